"""One suite over backend x kernel x dtype: every backend against the NumPy reference.

Kernel inputs are generated from the contract's own shape declarations, so a
kernel added to the contract is tested here without new code.
"""
import numpy as np
import pytest
from conftest import tolerance

from fastmlp import MLP, optim
from fastmlp.backends import contract, layout, tuning

SIZES = {"m": 5, "k": 7, "n": 6, "i": 4, "o": 3}
N_SAMPLES = 6

# Scalar arguments of each kernel: several settings where the branches differ.
SCALARS = {
    "penalty": [dict(l1=0.01, l2=0.0), dict(l1=0.0, l2=0.1), dict(l1=0.02, l2=0.3)],
    "dropout_apply": [dict(p=0.0), dict(p=0.4)],
    "sgd_update": [dict(lr=0.1, momentum=m, dampening=d, nesterov=nv, weight_decay=w)
                   for m, d, nv, w in [(0, 0, False, 0), (0.9, 0.1, False, 0.01),
                                       (0.9, 0, True, 0)]],
    "rmsprop_update": [dict(lr=0.01, alpha=0.99, eps=1e-8, momentum=m, centered=c, weight_decay=w)
                       for m, c, w in [(0, False, 0), (0.9, True, 0.01), (0.5, False, 0)]],
    "adam_update": [dict(step_size=1e-3 / 0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                         bias_correction2_sqrt=0.0316, weight_decay=w, amsgrad=a)
                    for w, a in [(0, False), (0.01, True)]],
    "adagrad_update": [dict(clr=0.01, eps=1e-10, weight_decay=w) for w in (0, 0.01)],
}
CODE_VALUES = {"act": range(len(contract.ACTIVATIONS))}
ELEMENTWISE = [name for name in contract.KERNELS
               if name not in ("output_loss", "network_forward", "network_loss_and_grads",
                               "network_train_step", "network_train_epoch")]


def kernel_cases():
    """(kernel name, scalar settings, codes) for every per-layer kernel."""
    for name in ELEMENTWISE:
        spec = contract.KERNELS[name]
        for scalars in SCALARS.get(name, [{}]):
            if spec.codes:
                for code in CODE_VALUES["act"]:
                    yield pytest.param(name, scalars, {"act": code},
                                       id=f"{name}-{contract.ACTIVATIONS[code]}")
            else:
                extra = "-".join(f"{k}={v}" for k, v in scalars.items()
                                 if k in ("momentum", "nesterov", "centered", "amsgrad", "p"))
                yield pytest.param(name, scalars, {}, id=f"{name}-{extra}" if extra else name)


def random_arguments(spec, dtype, seed):
    """Arguments for ``spec``'s kernel: random arrays of the declared shapes."""
    rng = np.random.default_rng(seed)
    args = {}
    for name, array in spec.arrays.items():
        shape = tuple(d if isinstance(d, int) else SIZES[d] for d in array.dims)
        values = rng.random(shape) if name in ("U", "Y") else rng.normal(size=shape)
        if name in ("state", "state_sum", "momentum_buf"):
            values = np.abs(values)  # second-moment state is non-negative
        if name == "state":
            values[0] += values[1] ** 2  # centered RMSprop needs E[g^2] >= E[g]^2
        args[name] = values.astype(dtype)
    return args


def run(backend, name, args, scalars, codes):
    arrays = {k: v.copy() for k, v in args.items()}
    values = {**arrays, **scalars, **codes}
    result = getattr(backend, name)(**{p: values[p] for p in contract.KERNELS[name].params})
    return arrays, result


@pytest.mark.parametrize("name, scalars, codes", list(kernel_cases()))
def test_kernel_agrees_with_numpy(backend, reference, dtype, name, scalars, codes):
    spec = contract.KERNELS[name]
    args = random_arguments(spec, dtype, seed=len(name))
    got_arrays, got = run(backend, name, args, scalars, codes)
    want_arrays, want = run(reference, name, args, scalars, codes)
    tol = tolerance(dtype)
    for array_name, array_spec in spec.arrays.items():
        if array_spec.written:
            assert np.isfinite(want_arrays[array_name]).all(), "the test inputs must stay finite"
            np.testing.assert_allclose(got_arrays[array_name], want_arrays[array_name], **tol,
                                       err_msg=f"{backend.name}.{name}: {array_name}")
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=tol["rtol"], abs=tol["atol"])


#: Each optimizer's update with weight decay: its settings, and a gradient and parameter at
#: which g = grad + weight_decay * param overflows in float32, though not in float64.
OVERFLOWING = [(name, SCALARS[name][1]) for name in
               ("sgd_update", "rmsprop_update", "adam_update", "adagrad_update")]


@pytest.mark.parametrize("name, scalars", OVERFLOWING, ids=[c[0] for c in OVERFLOWING])
def test_float32_updates_compute_in_float32(compiled_backend, reference, name, scalars):
    """The compiled updates round as the reference does, to the parameter's precision at
    each operation (NumPy's rule for Python scalars): float64 intermediates would give
    finite steps here where float32 ones give inf and nan. The naive backend's Python
    floats are float64 by nature."""
    assert scalars["weight_decay"] > 0
    spec = contract.KERNELS[name]
    args = random_arguments(spec, np.float32, seed=1)
    args["grad"] = np.full_like(args["grad"], 3.4e38)
    args["param"] = np.full_like(args["param"], 1e38)
    got_arrays, _ = run(compiled_backend, name, args, scalars, {})
    with np.errstate(over="ignore", invalid="ignore"):
        want_arrays, _ = run(reference, name, args, scalars, {})
    assert not np.isfinite(want_arrays["param"]).any(), "no overflow to test"
    for array_name, array_spec in spec.arrays.items():
        if array_spec.written:
            np.testing.assert_array_equal(got_arrays[array_name], want_arrays[array_name],
                                          err_msg=f"{compiled_backend.name}.{name}: {array_name}")


@pytest.mark.parametrize("act", range(len(contract.ACTIVATIONS)),
                         ids=list(contract.ACTIVATIONS))
def test_activation_kernels_work_in_place(backend, reference, act):
    rng = np.random.default_rng(act)
    Z, dA = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    A = reference.activation_forward(act, Z, np.empty_like(Z))
    inplace = Z.copy()
    backend.activation_forward(act, inplace, inplace)
    np.testing.assert_allclose(inplace, A, rtol=1e-10)
    grad = dA.copy()
    backend.activation_backward(act, A, grad, grad)
    np.testing.assert_allclose(grad, reference.activation_backward(act, A, dA, np.empty_like(dA)),
                               rtol=1e-10)


def test_sigmoid_is_stable_for_large_inputs(backend):
    Z = np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]])
    out = backend.activation_forward(contract.SIGMOID, Z, np.empty_like(Z))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [[0.0, 9.357622968839e-14, 0.5, 1 - 9.357622968839e-14, 1.0]],
                               rtol=1e-9, atol=1e-300)


# ---------------------------------------------------------------- whole networks

PAIRS = [("softmax", "cross_entropy"), ("sigmoid", "cross_entropy"), ("identity", "mse"),
         ("identity", "l1"), ("softmax", "mse"), ("sigmoid", "l1")]


def network_case(output, loss, n_outputs=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_SAMPLES, 4))
    if output == "softmax" and loss == "cross_entropy":
        y = rng.integers(0, n_outputs, N_SAMPLES)
    else:
        y = rng.random((N_SAMPLES, n_outputs))
    return X, y


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "identity"])
@pytest.mark.parametrize("output, loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_gradients_match_central_differences(backend, activation, output, loss):
    model = MLP([4, 5, 4, 3], activation=activation, output=output, loss=loss,
                backend=backend.name, dtype="float64", dropout=0.3, l1=0.01, l2=0.02, seed=1)
    X, y = network_case(output, loss)
    _, grads = model.loss_and_grads(X, y, dropout_seed=7)
    h = 1e-6
    for param, grad in zip(model.params, grads):
        numeric = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            saved = param[index]
            param[index] = saved + h
            up, _ = model.loss_and_grads(X, y, dropout_seed=7)
            param[index] = saved - h
            down, _ = model.loss_and_grads(X, y, dropout_seed=7)
            param[index] = saved
            numeric[index] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("output, loss", PAIRS, ids=[f"{o}-{l}" for o, l in PAIRS])
def test_model_agrees_with_numpy(backend, dtype, output, loss):
    kwargs = dict(sizes=[4, 6, 5, 3], output=output, loss=loss, dtype=dtype.name, dropout=0.25,
                  l1=0.001, l2=0.01, seed=3)
    ours, ref = MLP(backend=backend.name, **kwargs), MLP(backend="numpy", **kwargs)
    X, y = network_case(output, loss, seed=5)
    tol = tolerance(dtype)
    np.testing.assert_allclose(ours.forward(X), ref.forward(X), **tol)
    (loss_ours, grads_ours), (loss_ref, grads_ref) = (m.loss_and_grads(X, y, dropout_seed=2)
                                                      for m in (ours, ref))
    assert loss_ours == pytest.approx(loss_ref, rel=tol["rtol"], abs=tol["atol"])
    for g_ours, g_ref in zip(grads_ours, grads_ref):
        np.testing.assert_allclose(g_ours, g_ref, **tol)


@pytest.mark.parametrize("make_optimizer", [
    lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    lambda: optim.RMSprop(lr=1e-3, centered=True, momentum=0.5),
    lambda: optim.Adam(lr=1e-2, amsgrad=True, weight_decay=1e-3),
    lambda: optim.Adagrad(lr=0.05, lr_decay=1e-3)], ids=["sgd", "rmsprop", "adam", "adagrad"])
def test_twenty_optimizer_steps_agree(backend, dtype, make_optimizer):
    X, y = network_case("softmax", "cross_entropy", seed=9)
    losses = {}
    for name in (backend.name, "numpy"):
        model = MLP([4, 8, 3], backend=name, dtype=dtype.name, dropout=0.2, seed=4)
        step = model.make_step(X, y, make_optimizer())
        losses[name] = [step() for _ in range(20)], model._theta.copy()
    tol = tolerance(dtype)
    np.testing.assert_allclose(losses[backend.name][0], losses["numpy"][0], **tol)
    np.testing.assert_allclose(losses[backend.name][1], losses["numpy"][1],
                               rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


def test_short_fit_agrees(backend, dtype):
    X, y = network_case("softmax", "cross_entropy", seed=11)
    X, y = np.tile(X, (5, 1)), np.tile(y, 5)
    runs = {}
    for name in (backend.name, "numpy"):
        model = MLP([4, 8, 3], backend=name, dtype=dtype.name, dropout=0.1, seed=2)
        history = model.fit(X, y, optimizer=optim.Adam(lr=1e-2), epochs=3, batch_size=8)
        runs[name] = np.array(history.batch_losses)
    np.testing.assert_allclose(runs[backend.name], runs["numpy"], **tolerance(dtype))


#: (layer sizes, samples): small, and with every narrow inner dimension (1 to 4) at sizes
#: where the compiled backends fuse bias and ReLU into the forward product and ReLU's
#: derivative into the backward dX product.
NETWORK_SHAPES = [([4, 6, 5, 3], N_SAMPLES), ([3, 40, 4], 64), ([1, 24, 2, 9], 50)]


@pytest.mark.parametrize("hidden", [contract.RELU, contract.TANH], ids=["relu", "tanh"])
@pytest.mark.parametrize("sizes, n", NETWORK_SHAPES, ids=lambda v: "-".join(map(str, v))
                         if isinstance(v, list) else f"n{v}")
def test_network_kernel_matches_per_kernel_composition(backend, sizes, n, hidden):
    """A backend's own network kernel agrees with compose's chain of its kernels, dropout on."""
    from fastmlp.backends import compose

    _, composed = compose.make_network_kernels(backend.raw)
    plan = layout.plan(sizes, n, dropout=0.3, training=True)
    rng = np.random.default_rng(0)
    X, theta = rng.normal(size=(n, sizes[0])), rng.normal(size=plan.theta_size)
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    work = rng.random(plan.work_size)  # the U regions hold the dropout uniforms
    spec = np.array([hidden, contract.SOFTMAX, contract.CROSS_ENTROPY])
    coefs = np.array([0.3, 0.01, 0.02])
    results = []
    for kernel in (backend.network_loss_and_grads, composed):
        grad, w = np.zeros_like(theta), work.copy()
        results.append((kernel(X, Y, theta, grad, w, plan.layers, spec, coefs), grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-11, atol=1e-13)


#: (layer sizes, samples) of one ReLU hidden layer between a few inputs and a few classes:
#: the compiled backends' fused step for these (activations stored units x samples), at
#: sizes that reach every remainder loop (units not a multiple of 4, samples of 8).
NARROW_PAIRS = [([2, 100, 3], 300), ([1, 13, 4], 37), ([4, 6, 2], 8), ([3, 9, 2], 64)]


@pytest.mark.parametrize("sizes, n", NARROW_PAIRS, ids=lambda v: "-".join(map(str, v))
                         if isinstance(v, list) else f"n{v}")
def test_narrow_relu_pair_steps_agree_with_numpy(backend, dtype, sizes, n):
    """Training steps (``make_step``, where the fused kernel runs) with L2 on: the losses,
    and the outputs of the updated network (through the gradients of every parameter)."""
    rng = np.random.default_rng(n)
    X, y = rng.normal(size=(n, sizes[0])), rng.integers(0, sizes[-1], n)
    runs = []
    for name in (backend.name, "numpy"):
        model = MLP(sizes, backend=name, dtype=dtype.name, seed=3, l2=0.01)
        step = model.make_step(X, y, optim.SGD(lr=0.5, momentum=0.9))
        runs.append(([step() for _ in range(3)], model.forward(X)))
    tol = tolerance(dtype)
    np.testing.assert_allclose(runs[0][0], runs[1][0], **tol)
    np.testing.assert_allclose(runs[0][1], runs[1][1], **tol)


def test_fit_of_a_narrow_relu_pair_agrees_with_numpy(backend, dtype):
    """The fused step's training run: losses, and the accuracy fit reads back from the
    workspace's output probabilities."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(96, 2)), rng.integers(0, 3, 96)
    histories = [MLP([2, 12, 3], backend=name, dtype=dtype.name, seed=4).fit(
        X, y, optimizer=optim.Adam(lr=0.05), epochs=4, batch_size=32)
        for name in (backend.name, "numpy")]
    np.testing.assert_allclose(histories[0].batch_losses, histories[1].batch_losses,
                               **tolerance(dtype))
    assert histories[0].history["accuracy"] == histories[1].history["accuracy"]


def network_arguments(dtype, seed=0):
    """A training batch and flat buffers for a [4, 6, 5, 3] network with dropout."""
    plan = layout.plan([4, 6, 5, 3], N_SAMPLES, dropout=0.3, training=True)
    rng = np.random.default_rng(seed)
    X, theta = rng.normal(size=(N_SAMPLES, 4)), rng.normal(size=plan.theta_size)
    Y = np.eye(3)[rng.integers(0, 3, N_SAMPLES)]
    work = rng.random(plan.work_size)  # the U regions hold the dropout uniforms
    spec = np.array([contract.TANH, contract.SOFTMAX, contract.CROSS_ENTROPY])
    return (X.astype(dtype), Y.astype(dtype), theta.astype(dtype), work.astype(dtype),
            plan.layers, spec, np.array([0.3, 0.01, 0.02]))


#: (optimizer code, its update kernel's scalars): the branches of every update kernel.
TRAIN_STEP_CASES = [(code, tuple(s[n] for n in contract.update_scalars(code)))
                    for code, name in enumerate(contract.UPDATE_KERNELS) for s in SCALARS[name]]


@pytest.mark.parametrize("optimizer, scalars", TRAIN_STEP_CASES,
                         ids=[f"{contract.OPTIMIZERS[c]}-{i}" for i, (c, _) in
                              enumerate(TRAIN_STEP_CASES)])
def test_train_step_matches_loss_and_grads_then_update(backend, dtype, optimizer, scalars):
    """The fused step agrees with the backend's own two kernels, called one after the other."""
    X, Y, theta, work, layers, spec, coefs = network_arguments(dtype)
    rows = contract.update_state_rows(optimizer)
    state = np.abs(np.random.default_rng(1).normal(size=(rows, theta.size)))
    if rows == 3:
        state[0] += state[1] ** 2  # centered RMSprop needs E[g^2] >= E[g]^2
    state = state.astype(dtype)
    update = getattr(backend, contract.UPDATE_KERNELS[optimizer])
    results = []
    for fused in (True, False):
        t, g, w, st = theta.copy(), np.zeros_like(theta), work.copy(), state.copy()
        if fused:
            loss = backend.network_train_step(X, Y, t, g, w, layers, spec, coefs, optimizer, st,
                                              np.array(scalars, dtype=np.float64))
        else:
            loss = backend.network_loss_and_grads(X, Y, t, g, w, layers, spec, coefs)
            update(t, g, st if rows > 1 else st[0], *scalars)
        results.append((loss, t, g, st))
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-6, "atol": 1e-7}
    assert results[0][0] == pytest.approx(results[1][0], rel=tol["rtol"])
    for got, want in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(got, want, **tol)


def test_train_step_refuses_mismatched_optimizer_arguments(backend):
    X, Y, theta, work, layers, spec, coefs = network_arguments(np.float64)
    args = (X, Y, theta, np.zeros_like(theta), work, layers, spec, coefs)
    adam_state, adam_scalars = np.zeros((3, theta.size)), np.zeros(7)
    with pytest.raises(ValueError, match="optimizer must be a code"):
        backend.network_train_step(*args, 4, adam_state, adam_scalars)
    with pytest.raises(ValueError, match="state must have 1 row"):
        backend.network_train_step(*args, contract.SGD, adam_state, np.zeros(5))
    with pytest.raises(ValueError, match="scalars must hold adam_update's 7 scalars"):
        backend.network_train_step(*args, contract.ADAM, adam_state, np.zeros(5))
    with pytest.raises(ValueError, match="dimension 't'"):
        backend.network_train_step(*args, contract.ADAM, adam_state[:, 1:], adam_scalars)


@pytest.mark.parametrize("case", ["spread", "minus-inf", "nan"])
def test_softmax_cross_entropy_on_extreme_logits(backend, reference, dtype, case):
    """Logits 1000 apart (probabilities underflow to 0), -inf logits (probability 0; the
    loss is NaN as in the reference, 0 * inf) and NaN (NaN out, in its row, not a crash)."""
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(9, 4)) * 1000 if case == "spread" else rng.normal(size=(9, 4))
    Z[::3, 1] = {"spread": -1e4, "minus-inf": -np.inf, "nan": np.nan}[case]
    Z, Y = Z.astype(dtype), np.eye(4, dtype=dtype)[rng.integers(0, 4, 9)]
    outputs = []
    for kernels in (backend, reference):
        P, dZ = np.full_like(Z, 7), np.full_like(Z, 7)
        with np.errstate(invalid="ignore"):
            loss = kernels.softmax_cross_entropy(Z, Y, P, dZ)
        outputs.append((np.array(loss), P, dZ))
    for got, want in zip(*outputs):
        np.testing.assert_allclose(got, want, **tolerance(dtype))
    if case == "nan":
        assert np.isnan(outputs[0][1][::3]).all() and np.isfinite(outputs[0][1][1::3]).all()


@pytest.mark.parametrize("shape", [(5, 7, 6), (300, 2, 100)], ids=["wide", "narrow-k"])
def test_relu_keeps_a_nan_as_numpy_does(backend, reference, dtype, shape):
    """np.maximum(NaN, 0) is NaN: a NaN pre-activation must not come out of ReLU as a finite
    0 (it would hide a diverged weight), in the activation kernel, the layer with its bias
    and ReLU fused, and the fused narrow-pair step (its hidden units stored transposed)."""
    n, i, o = shape
    rng = np.random.default_rng(n)
    Z = rng.normal(size=(n, o)).astype(dtype)
    Z[0, 1] = np.nan
    got = backend.activation_forward(contract.RELU, Z, np.empty_like(Z))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(Z))
    X, W, b = (rng.normal(size=s).astype(dtype) for s in [(n, i), (i, o), (o,)])
    W[0, 2] = np.nan  # column 2 of every row is NaN
    got = backend.linear_forward(X, W, b, contract.RELU, np.zeros((n, o), dtype))
    want = reference.linear_forward(X, W, b, contract.RELU, np.zeros((n, o), dtype))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))

    sizes, n = [2, 13, 3], 40
    plan = layout.plan(sizes, n, training=True)
    X, theta = rng.normal(size=(n, 2)), rng.normal(size=plan.theta_size)
    Y, spec = np.eye(3)[rng.integers(0, 3, n)], np.array([contract.RELU, contract.SOFTMAX,
                                                          contract.CROSS_ENTROPY])
    theta[plan.layers[0, contract.W] + 5] = np.nan  # input 0's weight to hidden unit 5
    hidden = []
    for kernels in (backend, reference):
        work = np.zeros(plan.work_size)
        kernels.raw.network_loss_and_grads(X, Y, theta, np.zeros_like(theta), work,
                                           plan.layers, spec, np.zeros(3))
        start, columns = plan.layers[0, contract.A], n
        if hasattr(kernels.raw, "narrow_pair_loss_and_grads"):  # rows of pair_columns
            columns = tuning.pair_columns(n)
        rows = work[start:start + sizes[1] * columns].reshape(-1, columns)[:, :n]
        hidden.append(np.isnan(rows).sum())
    assert hidden[0] == hidden[1] == n
