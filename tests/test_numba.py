"""What only the Numba backend promises: no allocation inside compiled code, nothing compiled
at import, cached kernels, and kernels that stay valid Python (see also test_compiled.py)."""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def numba_backend():
    return require("numba")


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter from the repository root; return its stdout."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                            capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": ROOT, **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def dispatchers():
    """Every Numba dispatcher of the backend's modules, by qualified name."""
    import pkgutil
    import importlib

    from numba.core.registry import CPUDispatcher

    import fastmlp.backends.numba as package
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        found.update({f"{info.name}.{name}": value for name, value in vars(module).items()
                      if isinstance(value, CPUDispatcher)})
    return found



def test_compiled_code_allocates_nothing_in_a_step(numba_backend):
    out = run_python("""
        from numba.core.runtime import rtsys
        from fastmlp import MLP, datasets, optim
        X, y = datasets.mnist_like(64, seed=0)
        for opt in (optim.Adam(), optim.SGD(lr=0.1, momentum=0.9), optim.RMSprop(),
                    optim.Adagrad()):
            step = MLP([784, 32, 10], backend="numba", dropout=0.3).make_step(X, y, opt)
            step(); step()
            before = rtsys.get_allocation_stats().alloc
            for _ in range(20):
                step()
            print(rtsys.get_allocation_stats().alloc - before)
    """, NUMBA_NRT_STATS="1")
    # Numba wraps each array passed in from Python in one small MemInfo header: the 10
    # arrays of network_train_step. Anything more is an allocation made inside compiled
    # code (a temporary, or a copy before np.dot).
    assert [int(n) for n in out.split()] == [20 * 10] * 4


def test_a_relu_step_compiles_each_activation_helper_once(numba_backend, tmp_path):
    """A ReLU network's first step, on an empty cache (a cached step loads whole, compiling
    no callee), compiles ``activation_backward`` for one signature: the hidden layers' ReLU
    backward is inlined (``relu_backward``), not a literal-RELU copy."""
    out = run_python("""
        import numba
        from fastmlp import MLP, datasets
        from fastmlp.backends.numba import elementwise
        X, y = datasets.mnist_like(32, seed=0)
        MLP([784, 16, 16, 10], backend="numba").make_step(X, y, "adam")()
        signatures = elementwise.activation_backward.signatures
        print(len(signatures), any(isinstance(t, numba.types.Literal) for t in signatures[0]))
    """, NUMBA_CACHE_DIR=str(tmp_path))
    assert out.split() == ["1", "False"]


def test_import_compiles_nothing_and_every_kernel_is_cached(numba_backend):
    out = run_python("""
        import sys
        from numba.core.registry import CPUDispatcher
        import fastmlp
        from fastmlp import backends
        backends.get("numba")
        modules = [m for n, m in sys.modules.items() if n.startswith("fastmlp.backends.numba")]
        compiled = [n for m in modules for n, f in vars(m).items()
                    if isinstance(f, CPUDispatcher) and f.signatures]
        print(compiled)
    """)
    assert out.strip() == "[]"
    kernels = dispatchers()
    assert len(kernels) > 20
    assert {name for name, d in kernels.items() if type(d._cache).__name__ == "NullCache"} == set()


def test_only_the_kernels_python_calls_are_compiled_with_python_wrappers(numba_backend):
    """The backend's exports take calls from Python; every other function is a helper only
    compiled code calls (``CompiledOnly``: no wrapper compiled for a call from Python)."""
    from numba.core.registry import CPUDispatcher

    import fastmlp.backends.numba as package
    from fastmlp.backends.numba.intrinsics import CompiledOnly

    exported = {d for d in vars(package).values() if isinstance(d, CPUDispatcher)}
    assert len(exported) > 20
    assert {d for d in dispatchers().values() if not isinstance(d, CompiledOnly)} == exported


def test_a_helper_called_from_python_runs_a_twin_beside_its_cached_code(numba_backend, tmp_path):
    """A helper called from Python gives its result through an uncached twin; a later
    process that calls it from Python first, its wrapper-less machine code cached by a
    step, must not load that code for the twin (that would be a jump to no wrapper)."""
    code = """
        import numpy as np
        from fastmlp import MLP
        from fastmlp.backends.numba import narrow_pair, specialise
        X, y = np.random.default_rng(0).random((30, 2)), np.arange(30) % 3
        row = np.arange(5, dtype=np.float32)  # the step's kind of row: one signature
        if {step_first}:
            MLP([2, 8, 3], backend="numba").make_step(X, y, "adam")()
        print(narrow_pair.row_sum(row), specialise(narrow_pair.row_sum, (row,))(row),
              type(narrow_pair.row_sum.python_twin()._cache).__name__)
        print(np.isfinite(MLP([2, 8, 3], backend="numba").make_step(X, y, "adam")()))
    """
    cache = str(tmp_path)
    first = run_python(code.format(step_first=True), NUMBA_CACHE_DIR=cache).split()
    then = run_python(code.format(step_first=False), NUMBA_CACHE_DIR=cache).split()
    assert first == then == ["10.0", "10.0", "NullCache", "True"]
    assert list(tmp_path.rglob("narrow_pair.row_sum-*.nbi"))  # the helper itself is cached



def test_kernels_stay_valid_python_without_the_jit(numba_backend):
    """NUMBA_DISABLE_JIT=1 runs the kernels as plain Python: the suite must still pass."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_backends.py",
         "tests/test_compiled.py", "-k", "numba and float64 and (kernel_agrees or composition"
         " or twenty or extreme or narrow_relu_pair or matmul_paths)"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT, "NUMBA_DISABLE_JIT": "1"})
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]


def test_cheap_views_share_memory_and_references(numba_backend):
    """The network kernels' views (an intrinsic, not numba's reshape) alias the flat buffer
    and neither leak nor drop a reference to it."""
    flat = np.arange(20.0)
    refs = sys.getrefcount(flat)
    from fastmlp.backends.numba.network import block

    view = block(flat, 2, 3, 4)
    np.testing.assert_array_equal(view, flat[2:14].reshape(3, 4))
    view[0, 0] = -1.0
    assert flat[2] == -1.0 and sys.getrefcount(flat) == refs + 1
    del view
    assert sys.getrefcount(flat) == refs


def test_specialise_remembers_each_argument_kind_apart(numba_backend):
    """A kernel bound for one dtype, layout or write flag is never handed out for another:
    the remembered entry points are keyed on everything numba.typeof reads of an array."""
    from fastmlp.backends.numba import elementwise, specialise
    kernel = elementwise.penalty
    W32 = np.ones((3, 4), np.float32)
    readonly = W32.copy()
    readonly.flags.writeable = False
    kinds = {"f32": (W32, 0.0, 0.5, W32.copy()),
             "f64": (W32.astype(np.float64), 0.0, 0.5, W32.astype(np.float64)),
             "readonly W": (readonly, 0.0, 0.5, W32.copy())}
    bound = {name: specialise(kernel, args) for name, args in kinds.items()}
    assert specialise(kernel, (W32.copy(), 1.0, 2.0, W32.copy())) is bound["f32"]
    assert len({id(entry) for entry in bound.values()}) == 3
    for name, (W, l1, l2, dW) in kinds.items():  # each runs on its own kind of arguments
        assert bound[name](W, l1, l2, dW) == pytest.approx(3.0)


def test_borrowed_arguments_are_the_callers_arrays(numba_backend):
    """A kernel's ``borrowed`` arguments (views without reference counts) read and write the
    caller's memory, keep a strided array's strides, pass None through, and leave the
    caller's references as they were."""
    from numba import njit

    from fastmlp.backends.numba.intrinsics import borrowed

    @njit
    def kernel(flat, strided, nothing):
        flat, strided, nothing = borrowed((flat, strided, nothing))
        part = flat[1:3]  # a view of a borrowed array: not counted either
        part[:] = strided[0, 0] + strided[1, 1]
        return flat.sum(), nothing is None

    flat, strided = np.zeros(4), np.arange(12.0).reshape(3, 4)[:, ::2]  # strides (32, 16)
    refs = sys.getrefcount(flat), sys.getrefcount(strided)
    assert kernel(flat, strided, None) == (2 * 6.0, True)
    np.testing.assert_array_equal(flat, [0.0, 6.0, 6.0, 0.0])
    assert (sys.getrefcount(flat), sys.getrefcount(strided)) == refs


#: Networks and batches whose products take no narrow loop, and some that do.
WIDE = [([64, 100, 10], 32), ([2, 8, 1], 4), ([8, 16, 8], 64)]
NARROW = [([3, 40, 10], 64), ([20, 30, 5], 64)]


def network_arguments(sizes, batch, dtype=np.float64, seed=0):
    """Arguments of network_loss_and_grads for a softmax network over ``batch`` rows."""
    from fastmlp.backends import contract, layout
    rng = np.random.default_rng(seed)
    plan = layout.plan(sizes, batch, 0.0, True)
    theta = rng.normal(scale=0.5, size=layout.theta_offsets(sizes)[1]).astype(dtype)
    X = rng.normal(size=(batch, sizes[0])).astype(dtype)
    Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], batch)]
    spec = np.array([contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY], np.int64)
    return [X, Y, theta, np.zeros_like(theta), np.zeros(plan.work_size, dtype), plan.layers,
            spec, np.array([0.0, 1e-3, 1e-3])]


@pytest.mark.parametrize("sizes, batch", WIDE + NARROW)
def test_the_hooks_give_narrow_none_exactly_where_no_product_takes_a_narrow_loop(
        numba_backend, sizes, batch):
    from fastmlp.backends import layout, tuning
    layers = layout.plan(sizes, batch).layers
    narrow = any(path in tuning.NARROW_LOOPS for products in tuning.layer_paths(sizes, batch)
                 for path in products.values())
    assert tuning.narrow_loops(batch, layers) == narrow == ((sizes, batch) in NARROW)
    X = np.zeros((batch, sizes[0]))
    expected = (True if narrow else None,)
    assert numba_backend.step_kernel(X, layers, np.zeros(3, np.int64)) == (
        numba_backend.raw.layered_train_step, expected)
    forward_layers = layout.plan(sizes, batch, training=False).layers
    assert numba_backend.forward_kernel(X, forward_layers, np.zeros(3, np.int64))[1] == (
        (True,) if tuning.narrow_loops(batch, forward_layers, training=False) else (None,))


def test_an_epoch_decides_narrow_by_its_full_batches(numba_backend):
    """The last batch of digits in 32s (1347 rows: 3 left) would take the narrow-k loop for
    its weight gradient; the epoch kernel is still the one without narrow loops."""
    from fastmlp.backends import layout, tuning
    sizes, spec = [64, 100, 10], np.zeros(3, np.int64)
    full, last = layout.plan(sizes, 32).layers, layout.plan(sizes, 3).layers
    assert not tuning.narrow_loops(32, full) and tuning.narrow_loops(3, last)
    order, Xb = np.zeros((1, 1347), np.int64), np.zeros((32, 64))
    assert numba_backend.epoch_kernel(order, Xb, np.stack([full, last]), spec) == (
        numba_backend.raw.layered_train_epoch, (None,))


@pytest.mark.parametrize("sizes, batch", WIDE)
def test_without_narrow_loops_a_wide_network_is_computed_bit_for_bit_the_same(
        numba_backend, sizes, batch):
    kernel = numba_backend.raw.layered_loss_and_grads
    results = []
    for narrow in (True, None):
        args = network_arguments(sizes, batch)
        results.append((kernel(*args, narrow), args[3]))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("sizes, batch", NARROW + [([64, 100, 10], 3)])
def test_without_narrow_loops_a_narrow_shape_takes_blas_and_agrees(numba_backend, sizes, batch):
    """What an epoch's short last batch runs: the same gradients by the other paths."""
    from fastmlp import backends
    args = network_arguments(sizes, batch)
    loss = numba_backend.raw.layered_loss_and_grads(*args, None)
    reference = network_arguments(sizes, batch)
    expected = backends.get("numpy").raw.network_loss_and_grads(*reference)
    assert loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(args[3], reference[3], rtol=1e-10, atol=1e-12)


def compiled_in_a_cold_process(code, cache):
    """The names of the functions Numba compiles while a fresh process with an empty
    ``cache`` folder runs ``code`` (after ``import numpy as np``); a function compiled for
    a literal integer as its last argument also as ``name[value]``."""
    listen = textwrap.dedent("""
        import json
        import numpy as np
        from numba.core import event, types
        compiled = set()
        class Names(event.Listener):
            def on_start(self, ev):
                name, last = ev.data["dispatcher"].py_func.__name__, ev.data["args"][-1:]
                compiled.add(name)
                if last and isinstance(last[0], types.IntegerLiteral):
                    compiled.add(f"{name}[{last[0].literal_value}]")
            def on_end(self, ev):
                pass
        event.register("numba:compile", Names())
    """)
    out = run_python(listen + textwrap.dedent(code) + "\nprint(json.dumps(sorted(compiled)))\n",
                     NUMBA_CACHE_DIR=str(cache))
    return set(json.loads(out.splitlines()[-1]))


NARROW_LOOP_KERNELS = {"narrow_k", "narrow_k_rows", "narrow_n", "narrow_n_transposed_a",
                       "weight_grads"}


def test_a_network_without_narrow_products_compiles_no_narrow_loop(numba_backend, tmp_path):
    """A cold process (empty cache) stepping a wide network compiles the products it takes
    and none of the narrow loops: the compile time a first digits or MNIST step saves."""
    compiled = compiled_in_a_cold_process("""
        from fastmlp import MLP
        X = np.random.default_rng(0).random((64, 8))
        MLP([8, 16, 8], backend="numba", dtype="float64").make_step(X, np.arange(64) % 8,
                                                                     "sgd")()
    """, tmp_path)
    assert {"layered_train_step", "gemm_on_path", "linear_forward"} <= compiled, compiled
    assert not compiled & NARROW_LOOP_KERNELS, compiled
    # The thin levels are inlined into their callers (intrinsics.inline_jit), not compiled
    # apart: each compiled function optimises and emits its callees' code once more.
    assert not compiled & {"forward", "forward_backward", "layered_loss_and_grads", "gemm",
                           "sgd_update"}, compiled


#: (rows, fan_in, fan_out): layers whose products take no narrow loop (BLAS, the i-k-j
#: loop); NARROW_SELECTIONS below has some that do.
WIDE_LAYERS = [(64, 64, 64), (64, 2, 3), (256, 784, 512)]


def selection(narrow_k=(), weight_grads=(), narrow_n=False, narrow_n_transposed=False):
    """A ``tuning.NarrowLoops`` with True for the given k's and loops."""
    from fastmlp.backends import tuning

    def per_k(ks):
        return tuple(True if k in ks else None for k in range(1, tuning.NARROW_K + 1))
    return tuning.NarrowLoops(per_k(narrow_k), per_k(weight_grads), narrow_n or None,
                              narrow_n_transposed or None)


#: Per narrow layer (the spiral's first, a weight gradient over 3 rows, 3 outputs), the
#: narrow loops of its forward and of its backward (with dX).
NARROW_SELECTIONS = {
    (300, 2, 100): (selection(narrow_k=[2]), selection(weight_grads=[2], narrow_n=True)),
    (3, 64, 100): (None, selection(narrow_k=[3])),  # dW = X.T @ dZ over 3 rows
    (64, 40, 3): (selection(narrow_n=True), selection(narrow_k=[3], narrow_n_transposed=True)),
}


@pytest.mark.parametrize("rows, fan_in, fan_out", WIDE_LAYERS + list(NARROW_SELECTIONS))
def test_kernel_extra_selects_the_narrow_loops_the_shapes_take_and_none_for_wide_ones(
        numba_backend, rows, fan_in, fan_out):
    X, W = np.zeros((rows, fan_in)), np.zeros((fan_in, fan_out))
    dZ, out = np.zeros((rows, fan_out)), np.zeros((rows, fan_out))
    forward, backward = NARROW_SELECTIONS.get((rows, fan_in, fan_out), (None, None))
    extra = numba_backend.raw.kernel_extra
    assert extra("matmul", (X, W, out)) == extra("linear_forward", (X, W, None, 0, out)) == \
        (forward,)
    assert extra("linear_backward", (X, W, dZ, W, None, X)) == (backward,)
    assert extra("relu_forward", (X, X)) == ()


def test_without_dx_linear_backward_selects_the_weight_gradient_loops_alone(numba_backend):
    X, W, dZ = np.zeros((64, 40)), np.zeros((40, 3)), np.zeros((64, 3))
    assert numba_backend.raw.kernel_extra("linear_backward", (X, W, dZ, W, None, None)) == \
        (selection(narrow_n_transposed=True),)


@pytest.mark.parametrize("narrow", [selection(narrow_k=[3]), selection(weight_grads=[2])],
                         ids=["another-k", "another-loop"])
def test_a_raw_kernel_whose_narrow_lacks_the_loop_of_its_shape_raises(numba_backend, narrow):
    """Not a wrong answer: a shape whose loop ``narrow`` left out stops with an error."""
    from fastmlp.backends.numba.gemm import NOT_SELECTED
    X, W = np.ones((300, 2)), np.ones((2, 100))
    with pytest.raises(ValueError, match=re.escape(NOT_SELECTED)):
        numba_backend.raw.linear_forward(X, W, np.zeros(100), 1, np.empty((300, 100)), narrow)


def test_a_checked_kernel_on_a_narrow_shape_compiles_the_loops_of_its_shape_alone(
        numba_backend, tmp_path):
    """A first ``linear_forward`` and ``linear_backward`` of a user on the spiral's first
    layer (300x2x100): the narrow-k loop of k = 2 forward, the one-pass weight grads of
    k = 2 and the narrow-n dX back; no loop of another k, nor for a transposed A (each
    was compiled in, 61 compiles and 21 s for a first linear_backward: README)."""
    compiled = compiled_in_a_cold_process("""
        from fastmlp import backends
        k, rng = backends.get("numba"), np.random.default_rng(0)
        X, W, b = rng.random((300, 2)), rng.random((2, 100)), np.zeros(100)
        out = k.linear_forward(X, W, b, 1, np.empty((300, 100)))
        k.linear_backward(X, W, out, np.empty_like(W), b, np.empty_like(X))
    """, tmp_path)
    assert {"narrow_k_fixed[2]", "weight_grads_fixed[2]", "narrow_n"} <= compiled, compiled
    others = {f"{loop}[{k}]" for loop in ("narrow_k_fixed", "weight_grads_fixed")
              for k in (1, 3, 4)}
    assert not compiled & (others | {"narrow_n_transposed_a"}), compiled


def test_the_checked_product_kernels_compile_no_narrow_loop_for_a_wide_shape(
        numba_backend, tmp_path):
    """A first ``matmul``, ``linear_forward`` and ``linear_backward`` of a user (the checked
    kernels) on 64x64x64: BLAS's and the i-k-j loop's paths, none of the narrow loops."""
    compiled = compiled_in_a_cold_process("""
        from fastmlp import backends
        k, A = backends.get("numba"), np.ones((64, 64))
        k.matmul(A, A, A.copy())
        k.linear_forward(A, A, np.ones(64), 1, A.copy())
        k.linear_backward(A, A, A, A.copy(), np.ones(64), A.copy())
    """, tmp_path)
    assert {"gemm_on_path", "linear_forward", "linear_backward_relu"} <= compiled, compiled
    assert not compiled & NARROW_LOOP_KERNELS, compiled


def test_a_fit_whose_batches_all_take_the_narrow_pair_compiles_no_layered_step(
        numba_backend, tmp_path):
    """The spiral in one batch of 300: the epoch kernel of the narrow pair, with no layered
    step (nor its narrow loops) compiled in for batches that never come."""
    compiled = compiled_in_a_cold_process("""
        from fastmlp import MLP, datasets
        X, y = datasets.spiral()
        MLP([2, 100, 3], backend="numba", dtype="float32").fit(X, y, epochs=1, batch_size=300)
    """, tmp_path)
    assert {"narrow_pair_train_epoch", "narrow_pair_loss_and_grads"} <= compiled, compiled
    assert not compiled & ({"linear_forward", "linear_backward_relu", "gemm_on_path"}
                           | NARROW_LOOP_KERNELS), compiled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_vectorised_log_is_within_one_unit_in_the_last_place(numba_backend, dtype):
    """losses.log_positive (fdlibm's log, in a loop LLVM vectorises) against numpy's log
    over the positive normal numbers: at most one unit in the last place; NaN stays NaN."""
    from numba import njit

    from fastmlp.backends.numba.losses import log_positive

    @njit
    def logs(x, out):
        for i in range(x.size):
            out[i] = log_positive(x[i])

    info = np.finfo(dtype)
    rng = np.random.default_rng(3)
    x = np.exp(rng.uniform(np.log(info.tiny), np.log(info.max), 100_000)).astype(dtype)
    x = np.concatenate([x, rng.uniform(0.5, 4, 100_000).astype(dtype),
                        np.array([info.tiny, 2 ** -0.5, 1, 2, 4, info.max, np.nan], dtype)])
    out = np.empty_like(x)
    logs(x, out)
    exact = np.log(x.astype(np.longdouble))
    ulps = np.abs(out - exact) / np.spacing(np.abs(exact).astype(dtype))
    assert np.nanmax(ulps) <= 1.0 and np.isnan(out[-1]) and out[-5] == 0
