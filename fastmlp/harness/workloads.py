"""The benchmark cases: single kernels, whole training steps and sweeps, with FLOP counts.

A ``Case`` is backend-independent: ``case.build(backend_name)`` returns a
zero-argument callable that runs the workload once on that backend, with every
buffer built beforehand (kernels get their arrays, steps get
``MLP.make_step``). The same cases feed ``fastmlp report``, the regression gate
and the pytest-benchmark suite in ``bench/``.

FLOP counts: a multiply-add is 2 FLOPs; an elementwise ``exp``/``sqrt``/division
counts as 1, so elementwise GFLOP/s are indicative only (those kernels are
memory-bound; compare times, not GFLOP/s, between them).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from fastmlp import backends
from fastmlp.backends.contract import RELU, SIGMOID, TANH

DTYPES = ("float32", "float64")
SHORT = {"float32": "f32", "float64": "f64"}

#: Extra matrix-product paths a backend module may export next to ``matmul``.
MATMUL_VARIANTS = ("matmul_blocked", "matmul_blas")

#: Optimizer update kernels: name -> (kernel, state rows, FLOPs per element, scalar args).
UPDATES = {
    "sgd": ("sgd_update", 1, 2, (0.01, 0.0, 0.0, False, 0.0)),
    "momentum": ("sgd_update", 1, 5, (0.01, 0.9, 0.0, False, 0.0)),
    "nesterov": ("sgd_update", 1, 7, (0.01, 0.9, 0.0, True, 0.0)),
    "rmsprop": ("rmsprop_update", 3, 8, (0.01, 0.99, 1e-8, 0.0, False, 0.0)),
    "adam": ("adam_update", 3, 12, (1e-3, 0.9, 0.999, 1e-8, 0.5, 0.0, False)),
    "adagrad": ("adagrad_update", 1, 7, (0.01, 1e-10, 0.0)),
}

#: FLOPs per element of the activation kernels (forward, backward).
ACTIVATION_FLOPS = {"relu": (RELU, 1, 1), "sigmoid": (SIGMOID, 4, 3), "tanh": (TANH, 4, 3)}


@dataclass(frozen=True)
class Case:
    """One workload at one size and dtype; ``x`` is its size on the plots' axis."""

    group: str  # kernel, step, fit, fit-step, sweep-width, sweep-batch, reference
    name: str
    size: str
    dtype: str
    flops: float
    make: callable = field(compare=False, repr=False)  # (Backend.raw, dtype) -> callable
    x: float = 0.0
    only: tuple = ()  # backends this case is for (empty: every backend that has it)
    needs: str = ""  # a hook of contract.HOOKS the backend must provide itself
    steps: int = 1  # training steps one call runs; its times and ``flops`` are per step

    @property
    def key(self):
        return f"{self.group}/{self.name}/{self.size}/{SHORT[self.dtype]}"

    def applies(self, backend):
        if self.only and backend not in self.only:
            return False
        if self.needs:
            return self.needs in backends.get(backend).own_hooks
        return True

    def build(self, backend):
        """A zero-argument callable running this case once on ``backend``."""
        return self.make(backends.get(backend).raw, np.dtype(self.dtype))


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _bound(raw, kernel, *args):
    """``raw``'s kernel bound to ``args`` and to the trailing arguments its backend chooses
    for them (hook ``kernel_extra``), as the checked kernel calls it."""
    return functools.partial(getattr(raw, kernel), *args,
                             *backends.hook_of(raw, "kernel_extra")(kernel, args))


# ---------------------------------------------------------------- kernels

def matmul_case(m, k, n, dtype, kernel="matmul", group="kernel"):
    def make(raw, dt):
        rng = np.random.default_rng(0)
        A, B, out = _rand(rng, (m, k), dt), _rand(rng, (k, n), dt), np.empty((m, n), dt)
        if kernel == "matmul":
            return _bound(raw, kernel, A, B, out)
        fn = getattr(raw, kernel)  # a hook: no trailing arguments
        return lambda: fn(A, B, out)

    needs = kernel if kernel != "matmul" else ""
    return Case(group, kernel, f"{m}x{k}x{n}", dtype, 2.0 * m * k * n, make,
                x=(m * k * n) ** (1 / 3), needs=needs)


def linear_cases(n, i, o, dtype):
    def forward(raw, dt):
        rng = np.random.default_rng(0)
        X, W, b, out = _rand(rng, (n, i), dt), _rand(rng, (i, o), dt), _rand(rng, o, dt), \
            np.empty((n, o), dt)
        return _bound(raw, "linear_forward", X, W, b, RELU, out)

    def backward(raw, dt):
        rng = np.random.default_rng(0)
        X, W, dZ = _rand(rng, (n, i), dt), _rand(rng, (i, o), dt), _rand(rng, (n, o), dt)
        dW, db, dX = np.empty((i, o), dt), np.empty(o, dt), np.empty((n, i), dt)
        return _bound(raw, "linear_backward", X, W, dZ, dW, db, dX)

    size = f"{n}x{i}x{o}"
    return [Case("kernel", "linear_forward", size, dtype, 2.0 * n * i * o + 2 * n * o, forward,
                 x=(n * i * o) ** (1 / 3)),
            Case("kernel", "linear_backward", size, dtype, 4.0 * n * i * o + n * o, backward,
                 x=(n * i * o) ** (1 / 3))]


def activation_cases(n, o, dtype):
    cases = []
    for name, (code, f_flops, b_flops) in ACTIVATION_FLOPS.items():
        def forward(raw, dt, code=code):
            Z, out = _rand(np.random.default_rng(0), (n, o), dt), np.empty((n, o), dt)
            return lambda: raw.activation_forward(code, Z, out)

        def backward(raw, dt, code=code):
            rng = np.random.default_rng(0)
            A, dA, out = rng.random((n, o)).astype(dt), _rand(rng, (n, o), dt), np.empty((n, o), dt)
            return lambda: raw.activation_backward(code, A, dA, out)

        cases += [Case("kernel", f"{name}_forward", f"{n}x{o}", dtype, f_flops * n * o, forward,
                       x=n * o),
                  Case("kernel", f"{name}_backward", f"{n}x{o}", dtype, b_flops * n * o, backward,
                       x=n * o)]
    return cases


def softmax_ce_case(n, k, dtype):
    def make(raw, dt):
        rng = np.random.default_rng(0)
        Z, Y = _rand(rng, (n, k), dt), np.eye(k, dtype=dt)[rng.integers(0, k, n)]
        P, dZ = np.empty((n, k), dt), np.empty((n, k), dt)
        return lambda: raw.softmax_cross_entropy(Z, Y, P, dZ)

    return Case("kernel", "softmax_cross_entropy", f"{n}x{k}", dtype, 8.0 * n * k, make, x=n * k)


def update_case(name, size, dtype):
    kernel, rows, flops, scalars = UPDATES[name]

    def make(raw, dt):
        rng = np.random.default_rng(0)
        param, grad = _rand(rng, size, dt), _rand(rng, size, dt) * dt.type(1e-3)
        state = np.zeros((rows, size), dt) if rows > 1 else np.zeros(size, dt)
        if name == "adagrad":
            state += 0.1  # a positive accumulator, as after a first step
        fn = getattr(raw, kernel)
        return lambda: fn(param, grad, state, *scalars)

    return Case("kernel", f"{name}_update", str(size), dtype, float(flops * size), make, x=size)


# ---------------------------------------------------------------- training steps

#: Step workloads: name -> (layer sizes, batch, optimizer name, output activation).
NETWORKS = {
    "xor": ((2, 2, 1), 4, "adam", "sigmoid"),
    "spiral": ((2, 100, 3), 300, "adam", "softmax"),
    "digits": ((64, 100, 10), 32, "adam", "softmax"),
    "mnist": ((784, 512, 512, 10), 256, "rmsprop", "softmax"),
}


def step_flops(sizes, batch, optimizer="adam"):
    """Forward (all layers) + dW (all) + dX (all but the first) products, plus the update."""
    pairs = list(zip(sizes[:-1], sizes[1:]))
    gemm = sum(2.0 * batch * i * o for i, o in pairs)
    n_params = sum(i * o + o for i, o in pairs)
    return 3 * gemm - 2.0 * batch * sizes[0] * sizes[1] + UPDATES[optimizer][2] * n_params


def _batch(sizes, batch, dt, output):
    rng = np.random.default_rng(0)
    if sizes[0] == 784:
        try:
            from fastmlp import datasets
            X, y = datasets.mnist_like(batch, seed=0, dtype=dt)
            return np.asarray(X, dt), np.asarray(y)
        except (ImportError, AttributeError, TypeError):
            pass  # fall back to random data: a step's time does not depend on the values
    X = _rand(rng, (batch, sizes[0]), dt)
    y = rng.integers(0, 2, batch) if output == "sigmoid" else rng.integers(0, sizes[-1], batch)
    return X, y


def step_case(group, name, sizes, batch, dtype, optimizer="adam", output="softmax", x=0.0):
    def make(raw, dt):
        from fastmlp import MLP, optim

        model = MLP(sizes, output=output, backend=_name_of(raw), dtype=dt.name, seed=0)
        X, y = _batch(sizes, batch, dt, output)
        opt = optim.get(optimizer, **({"lr": 1e-3} if optimizer != "sgd" else {}))
        return model.make_step(X, y, opt)

    return Case(group, name, _label(sizes, batch, optimizer), dtype,
                step_flops(sizes, batch, optimizer), make, x=x)


#: ``fit`` workloads: (network of ``NETWORKS``, batch, epochs a timed call runs), all Adam.
#: About 100 batches a call (MNIST: 8): what a fit call sets up once (a step bound to each
#: batch of a chunk) then weighs little, and a call stays near a step case's 2 ms round (on
#: a loaded machine a call of 50 ms is preempted in every round, a 2 ms round mostly not).
FITS = (("xor", 4, 100), ("spiral", 30, 10), ("spiral", 300, 100), ("digits", 32, 3),
        ("mnist", 256, 1))
#: Rows of each fit's data set: whole batches only, so a call's time / its steps is a step's.
FIT_ROWS = {"xor": 4, "spiral": 300, "digits": 1344, "mnist": 2048}


def _label(sizes, batch, optimizer):
    return "-".join(map(str, sizes)) + f" b{batch} {optimizer}"


def fit_keys(name, batch, dtype="float32"):
    """``(fit case key, key of its step case)``: the ``step`` case of the same network, batch
    and Adam if the suite has one, else the ``fit-step`` case made for it."""
    sizes, step_batch, optimizer = NETWORKS[name][:3]
    group = "step" if (step_batch, optimizer) == (batch, "adam") else "fit-step"
    size = f"{_label(sizes, batch, 'adam')}/{SHORT[dtype]}"
    return f"fit/{name}/{size}", f"{group}/{name}/{size}"


def fit_data(name, dt):
    """``(X, y)``: the data set ``fit`` trains on in a ``fit`` case, ``FIT_ROWS[name]`` rows."""
    from fastmlp import datasets

    rows = FIT_ROWS[name]
    if name == "xor":
        X, y = datasets.xor(dt.name)
        return X, y.ravel()
    if name == "spiral":
        return datasets.spiral(dtype=dt.name)
    if name == "digits":
        X, y = datasets.digits(dt.name)[0]
        return X[:rows], y[:rows]
    return datasets.mnist_like(rows, seed=0, dtype=dt.name)


def fit_case(name, batch, epochs, dtype="float32"):
    """``MLP.fit`` for ``epochs`` over ``fit_data(name)``, warm (a first fit compiled it and
    built its workspaces), timed per batch: the steady-state cost of a step through ``fit``."""
    sizes, output = NETWORKS[name][0], NETWORKS[name][3]

    def make(raw, dt):
        from fastmlp import MLP, optim

        model = MLP(sizes, output=output, backend=_name_of(raw), dtype=dt.name, seed=0)
        X, y, opt = *fit_data(name, dt), optim.get("adam", lr=1e-3)
        model.fit(X, y, optimizer=opt, epochs=1, batch_size=batch)
        return lambda: model.fit(X, y, optimizer=opt, epochs=epochs, batch_size=batch)

    steps = epochs * FIT_ROWS[name] // batch
    return Case("fit", name, _label(sizes, batch, "adam"), dtype,
                step_flops(sizes, batch, "adam"), make, steps=steps)


def fit_cases(fits=FITS, dtype="float32"):
    """The ``fit`` cases of ``fits`` and the ``fit-step`` cases they are compared with."""
    cases = []
    for name, batch, epochs in fits:
        sizes, _, _, output = NETWORKS[name]
        if fit_keys(name, batch, dtype)[1].startswith("fit-step/"):
            cases.append(step_case("fit-step", name, sizes, batch, dtype, "adam", output))
        cases.append(fit_case(name, batch, epochs, dtype))
    return cases


def _name_of(raw):
    """The registry name of a backend module."""
    return next(name for name, module in backends.MODULES.items() if module == raw.__name__)


def mnist_gemms_case(dtype):
    """The MNIST step's 8 matrix products alone, in NumPy: the GEMM-bound time of a step."""
    sizes, batch = NETWORKS["mnist"][0], NETWORKS["mnist"][1]

    def make(raw, dt):
        rng = np.random.default_rng(0)
        pairs = list(zip(sizes[:-1], sizes[1:]))
        acts = [_rand(rng, (batch, s), dt) for s in sizes]
        Ws = [_rand(rng, p, dt) for p in pairs]
        dWs = [np.empty(p, dt) for p in pairs]

        def run():
            for l, W in enumerate(Ws):
                np.matmul(acts[l], W, out=acts[l + 1])  # forward
            for l in range(len(Ws) - 1, -1, -1):
                np.matmul(acts[l].T, acts[l + 1], out=dWs[l])  # dW = X.T @ dZ
                if l:
                    np.matmul(acts[l + 1], Ws[l].T, out=acts[l])  # dX = dZ @ W.T
        return run

    flops = step_flops(sizes, batch, "sgd") - 2 * sum(i * o + o for i, o in
                                                      zip(sizes[:-1], sizes[1:]))
    return Case("reference", "mnist_gemms", "784-512-512-10 b256", dtype, flops, make,
                only=("numpy",))


def calibration_case():
    """A fixed mix of small NumPy calls and Python loop work: the gate's unit of time.

    Small on purpose, like most cases: a multi-threaded BLAS call would make
    the unit swing with the load on the other core, which the cases mostly do not.
    """
    def make(raw, dt):
        rng = np.random.default_rng(0)
        A, out = _rand(rng, (64, 64), dt), np.empty((64, 64), dt)
        v, w = rng.random(4096), np.empty(4096)

        def run():
            for _ in range(4):
                np.matmul(A, A, out=out)
                np.exp(v, out=w)
                np.maximum(w, 1.5, out=w)
            total = 0.0
            for i in range(200):  # interpreter speed: most small cases are call-overhead bound
                total += i * 0.5
            return total
        return run

    return Case("reference", "calibration", "4x(64^3+exp4k)+py200", "float64",
                4 * (2.0 * 64 ** 3 + 2 * 4096), make, only=("numpy",))


def peak_case(n=1024, name="gemm_peak"):
    """``numpy.matmul`` float32 at n x n x n: the machine's GEMM peak (roofline).

    The suites time it first and, as ``gemm_peak_end``, last: if the two differ,
    the machine's load changed during the run.
    """
    case = matmul_case(n, n, n, "float32", group="reference")
    return Case("reference", name, case.size, "float32", case.flops, case.make,
                x=case.x, only=("numpy",))


# ---------------------------------------------------------------- suites

#: Cases timed round by round together, as the backends of one case are: the two sides of
#: each ratio between cases that the targets print (``tables.TARGETS``). Timed apart, the
#: load of a shared machine could change between them; the MNIST step's ratio to its
#: GEMMs swung 1.15x-1.68x between runs minutes apart.
TIMED_TOGETHER = (
    ("step/mnist/784-512-512-10 b256 rmsprop/f32",
     "reference/mnist_gemms/784-512-512-10 b256/f32"),
    ("kernel/matmul/256x784x512/f32", "kernel/matmul_blocked/256x784x512/f32"),
) + tuple(fit_keys(name, batch) for name, batch, _ in FITS)  # fit per batch / step


def timed_groups(cases):
    """``cases`` in order, as lists of cases to time together (``TIMED_TOGETHER``): each
    group at its first case's place, every other case alone."""
    group_of = {key: keys for keys in TIMED_TOGETHER for key in keys}
    groups, open_groups = [], {}
    for case in cases:
        keys = group_of.get(case.key)
        if keys is None:
            groups.append([case])
        elif keys in open_groups:
            open_groups[keys].append(case)
        else:
            open_groups[keys] = [case]
            groups.append(open_groups[keys])
    return groups

def suite(quick=False):
    """Every case of ``fastmlp report`` (``quick``: a handful, for CI)."""
    if quick:
        return quick_suite()
    cases = [calibration_case(), peak_case(), mnist_gemms_case("float32")]
    for dtype in DTYPES:
        for n in (32, 64, 128, 256, 512):
            cases += [matmul_case(n, n, n, dtype, k) for k in ("matmul",) + MATMUL_VARIANTS]
        cases += [matmul_case(256, 784, 512, dtype, k) for k in ("matmul",) + MATMUL_VARIANTS]
        cases += linear_cases(256, 784, 512, dtype) + linear_cases(300, 2, 100, dtype)
        cases += activation_cases(256, 512, dtype) if dtype == "float32" else []
        cases.append(softmax_ce_case(256, 10, dtype))
        cases += [update_case(name, 669_706, dtype) for name in UPDATES]
        cases += [step_case("step", name, sizes, batch, dtype, opt, out)
                  for name, (sizes, batch, opt, out) in NETWORKS.items()]
    cases += [update_case(name, 603, "float32") for name in UPDATES]  # spiral-sized
    cases += [step_case("sweep-width", "width", (64, w, 10), 256, "float32", x=w)
              for w in (16, 64, 256, 1024)]
    cases += [step_case("sweep-batch", "batch", (64, 100, 10), b, "float32", x=b)
              for b in (1, 4, 16, 64, 256, 1024)]
    return cases + fit_cases() + [peak_case(name="gemm_peak_end")]


def quick_suite():
    """Small, fast cases touching every kind of workload (seconds in all)."""
    cases = [calibration_case(), peak_case(256), matmul_case(64, 64, 64, "float32"),
             matmul_case(64, 64, 64, "float32", "matmul_blocked"),
             *linear_cases(32, 64, 32, "float32"), *activation_cases(32, 64, "float32")[:2],
             softmax_ce_case(32, 10, "float32"), update_case("adam", 4096, "float32"),
             step_case("step", "xor", (2, 2, 1), 4, "float32", "adam", "sigmoid"),
             step_case("step", "spiral", (2, 100, 3), 300, "float32", "adam"),
             *fit_cases([f for f in FITS if f[:2] in (("xor", 4), ("spiral", 300))])]
    cases += [step_case("sweep-batch", "batch", (64, 100, 10), b, "float32", x=b) for b in (4, 64)]
    return cases + [peak_case(256, "gemm_peak_end")]
