"""The two compiled backends are mirror twins: the same module names, the same function names
for the same work, the same tuning table, and the same path for the same shapes. Also: no
import cycle in fastmlp, and no source file over 500 lines."""
import ast
import itertools
import os
import re

import numpy as np
import pytest
from conftest import require

from fastmlp.backends import contract, layout, tuning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "fastmlp")
NUMBA_DIR = os.path.join(PACKAGE, "backends", "numba")
CYTHON_DIR = os.path.join(PACKAGE, "backends", "cython")

#: Files of cython/ without a Numba twin: the one translation unit that includes the .pxi
#: files (and its generated .c and .so), and tuning.h and tuning.pxi, which setup.py writes
#: from tuning.py.
#: The rule for the rest: a stem is the name before its first dot, and a .h is the C its
#: same-stem .pxi declares (narrow_pair.h, and narrow_pair.typed.h, the loops it includes
#: once per float type, are narrow_pair.pxi's).
CYTHON_BUILD_FILES = re.compile(r"^(_kernels\..*|tuning\.(h|pxi)|__init__\.py|__pycache__)$")

#: Per module: the functions both backends define under this name, for the same work.
TWINS = {
    "intrinsics": ["tile", "log_split"],
    "gemm": ["gemm", "gemm_on_path", "narrow_k", "narrow_n", "narrow_n_transposed_a",
             "weight_grads", "matmul", "matmul_path", "matmul_blas"],
    "blocked": ["pack_panel", "row_block_product", "matmul_blocked"],
    "elementwise": ["sigmoid", "softmax_rows", "bias_activation", "activation_forward",
                    "activation_backward", "penalty", "dropout_apply"],
    "linear": ["linear_forward", "linear_backward", "linear_backward_relu"],
    "losses": ["exp_nonpositive", "log_positive", "softmax_cross_entropy",
               "sigmoid_cross_entropy", "pointwise_loss", "mse_loss", "l1_loss", "output_loss"],
    "updates": ["sgd_update", "rmsprop_update", "adam_update", "adagrad_update", "update"],
    "network": ["forward", "network_forward", "penalties", "layered_loss_and_grads",
                "layered_train_step"],
    "narrow_pair": ["softmax_cross_entropy_transposed", "pair_forward", "pair_backward",
                    "narrow_pair_loss_and_grads", "narrow_pair_train_step"],
    "epoch": ["gather", "fill_uniforms", "count_correct", "all_finite", "steps", "train_epoch",
              "layered_train_epoch", "narrow_pair_train_epoch"],
}


def stems(folder, skip=re.compile(r"^(__init__\.py|__pycache__)$")):
    return {name.split(".")[0] for name in os.listdir(folder) if not skip.match(name)}


def defined(path):
    """Names of the functions a .py, .pyx/.pxi or .h file defines at its top level."""
    text = open(path).read()
    if path.endswith(".py"):  # functions, and names bound at the top level (or in an if there)
        nodes = [n for top in ast.parse(text).body
                 for n in ([top] + (top.body + top.orelse if isinstance(top, ast.If) else []))]
        return ({n.name for n in nodes if isinstance(n, ast.FunctionDef)}
                | {t.id for n in nodes if isinstance(n, ast.Assign) for target in n.targets
                   for t in ast.walk(target) if isinstance(t, ast.Name)})
    pattern = r"^(?:cp?def|def)\s[^(=]*?\b(\w+)\(" if path.endswith(".pxi") else \
        r"^(?:static|FASTMLP_INLINE)[^(=]*?\b(\w+)\("
    return set(re.findall(pattern, text, re.M))


def test_both_backends_have_the_same_module_names():
    cython = {name.split(".")[0] for name in os.listdir(CYTHON_DIR)
              if not CYTHON_BUILD_FILES.match(name)}
    assert stems(NUMBA_DIR) == cython
    assert set(TWINS) == cython


@pytest.mark.parametrize("module", sorted(TWINS))
def test_twin_functions_have_one_name_in_both_backends(module):
    numba = defined(os.path.join(NUMBA_DIR, module + ".py"))
    cython = set().union(*(defined(os.path.join(CYTHON_DIR, module + ext))
                           for ext in (".pxi", ".h", ".typed.h")
                           if os.path.exists(os.path.join(CYTHON_DIR, module + ext))))
    assert set(TWINS[module]) <= numba, sorted(set(TWINS[module]) - numba)
    assert set(TWINS[module]) <= cython, sorted(set(TWINS[module]) - cython)


def test_c_helpers_are_a_real_header_with_every_name_written_out():
    """No C inside Python strings, no names pasted together by the preprocessor."""
    for name in os.listdir(CYTHON_DIR):
        if name.endswith((".pyx", ".pxi")):
            text = open(os.path.join(CYTHON_DIR, name)).read()
            assert "cdef extern from *" not in text, name
        if name.endswith(".h") and name != "tuning.h":
            assert "##" not in open(os.path.join(CYTHON_DIR, name)).read(), name


def test_the_cython_build_has_the_tuning_table_and_the_contract_codes():
    require("cython")
    from fastmlp.backends.cython import _kernels

    assert _kernels.TUNING == tuning.CONSTANTS and _kernels.MACHINE_KIND == tuning.KIND
    codes = {name: getattr(contract, name) for name in _kernels.CODES}
    assert _kernels.CODES == codes
    assert [_kernels.CODES[c] for c in layout.LAYER_COLUMNS] == list(range(9))


def test_numba_compiles_the_tuning_table_itself():
    from fastmlp.backends.numba import gemm, linear

    assert gemm.gemm_path is tuning.gemm_path and linear.narrow_k_applies is tuning.narrow_k_applies


SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 64, 100, 300, 819, 820, 1024, 1025, 1365, 3000]


def test_both_backends_take_the_same_product_path_for_the_same_shapes():
    """The Cython build's gemm_path and narrow_k_applies (tuning.py's bodies under C types)
    against tuning's (which Numba compiles), over every shape of SIZES^3 and both layouts."""
    require("cython")
    from fastmlp.backends.cython import _kernels

    seen = set()
    for m, k, n in itertools.product(SIZES, repeat=3):
        applies = tuning.narrow_k_applies(m, k, n)
        assert _kernels.tuning_narrow_k_applies(m, k, n) == applies, (m, k, n)
        for trans_a, trans_b in itertools.product((False, True), repeat=2):
            path = tuning.gemm_path(m, k, n, trans_a, trans_b)
            assert _kernels.tuning_gemm_path(m, k, n, trans_a, trans_b) == path, (m, k, n, trans_a,
                                                                          trans_b)
            seen.add(path)
    assert seen == set(range(len(tuning.GEMM_PATHS)))  # the grid reaches every path


def test_tuning_thresholds_pick_the_documented_paths():
    assert tuning.gemm_path(8, 8, 8, False, False) == tuning.LOOP_PATH  # tiny
    assert tuning.gemm_path(300, 2, 100, False, False) == tuning.NARROW_K_PATH  # X @ W1
    assert tuning.gemm_path(300, 100, 3, False, False) == tuning.NARROW_N_PATH  # H @ W2
    assert tuning.gemm_path(100, 300, 3, True, False) == tuning.NARROW_N_PATH  # H.T @ dZ
    small = tuning.LOOP_PATH if tuning.SMALL_GEMM > 64000 else tuning.BLAS_PATH  # the kind's
    assert tuning.gemm_path(40, 40, 40, False, False) == small  # small, i-k-j
    assert tuning.gemm_path(40, 40, 40, False, True) == tuning.BLAS_PATH  # small, B.T
    assert tuning.gemm_path(256, 784, 512, False, False) == tuning.BLAS_PATH


NETWORKS = [  # sizes, samples, hidden activation, output, loss, dropout: narrow pair or not
    ([2, 100, 3], 300, contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.0, (2, 3)),
    ([4, 6, 4], 8, contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.0, (4, 4)),
    ([2, 100, 3], 300, contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.3, ()),
    ([2, 100, 3], 300, contract.TANH, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.0, ()),
    ([2, 100, 3], 300, contract.RELU, contract.IDENTITY, contract.MSE, 0.0, ()),
    ([5, 10, 3], 300, contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.0, ()),
    ([2, 10, 3], 7, contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.0, ()),
    ([4, 6, 1], 1300, contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.0, ()),
    ([2, 8, 8, 3], 300, contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY, 0.0, ()),
]


@pytest.mark.parametrize("sizes, n, hidden, out, loss, dropout, pair", NETWORKS)
def test_both_backends_choose_the_narrow_pair_for_the_same_networks(sizes, n, hidden, out, loss,
                                                                     dropout, pair):
    plan = layout.plan(sizes, n, dropout=dropout, training=True)
    spec = np.array([hidden, out, loss])
    assert tuning.narrow_pair(n, plan.layers, spec) == pair
    X = np.zeros((n, sizes[0]))
    for name in ("numba", "cython"):
        backend = require(name)
        kernel, extra = backend.step_kernel(X, plan.layers, spec)
        expected = backend.raw.narrow_pair_train_step if pair else backend.raw.layered_train_step
        assert kernel is expected, name
        # The layered step of numba also takes its ``narrow`` argument (test_numba.py).
        assert extra == pair if pair or name == "cython" else extra in ((True,), (None,)), name


def test_the_narrow_pairs_padded_rows_fit_its_scratch_and_work_regions():
    """The pair's rows of ``tuning.pair_columns(n)`` samples: X.T's must fit the stack (3
    inputs, 1365 samples fit unpadded, not padded to 1376), the hidden layer's take its
    gradient's region after its own (no pair where the layout puts none there), and whole
    vectors of every machine kind make them, at most twice the fewest samples a pair takes."""
    spec = np.array([contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY])
    assert tuning.pair_columns(1365) == 1376 and tuning.pair_columns(1360) == 1360
    assert tuning.narrow_pair(1360, layout.plan([3, 10, 1], 1360).layers, spec) == (3, 1)
    assert tuning.narrow_pair(1365, layout.plan([3, 10, 1], 1365).layers, spec) == ()
    layers = layout.plan([2, 10, 3], 300).layers.copy()
    assert tuning.narrow_pair(300, layers, spec) == (2, 3)
    layers[0, layout.DZ] += 1
    assert tuning.narrow_pair(300, layers, spec) == ()
    assert tuning.PAD_LANES % (tuning.TILE_VECTOR_BYTES // 4) == 0
    assert tuning.PAD_LANES <= 2 * tuning.MIN_LOOP_COLUMNS


def test_network_loss_and_grads_runs_the_narrow_pair_too(compiled_backend):
    """Every entry point asks tuning.narrow_pair: after network_loss_and_grads, the hidden
    activations of a narrow pair are stored units x samples (rows ``tuning.pair_columns``
    long), as after a training step."""
    sizes, n = [2, 13, 3], 40
    plan = layout.plan(sizes, n, training=True)
    rng = np.random.default_rng(0)
    X, theta = rng.normal(size=(n, 2)), rng.normal(size=plan.theta_size)
    Y = np.eye(3)[rng.integers(0, 3, n)]
    grad, work = np.zeros_like(theta), np.zeros(plan.work_size)
    spec = np.array([contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY])
    compiled_backend.network_loss_and_grads(X, Y, theta, grad, work, plan.layers, spec,
                                            np.zeros(3))
    W1, b1 = layout.param_views(theta, plan.layers)[:2]
    at, columns = plan.layers[0, layout.A], tuning.pair_columns(n)
    hidden = work[at:at + 13 * columns].reshape(13, columns)[:, :n]
    np.testing.assert_allclose(hidden, np.maximum(X @ W1 + b1, 0).T, rtol=1e-10, atol=1e-12)


def imports(path, module, modules):
    """The fastmlp modules ``module`` (at ``path``) imports anywhere, functions included:
    ``from a import b`` imports module a.b if there is one, else module a."""
    tree, found = ast.parse(open(path).read()), set()
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([node.module] if node.module else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                         for a in node.names)
    return {name for name in found if name.startswith("fastmlp")}


def fastmlp_modules():
    modules = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                modules[dotted.removesuffix(".__init__")] = path
    return modules


def test_no_import_cycle_in_fastmlp():
    """Each module's imports, anywhere in it (a function-level import would hide a cycle
    from the interpreter, not from this graph), form no cycle."""
    modules = fastmlp_modules()
    graph = {m: sorted(imports(p, m, modules) & set(modules) - {m}) for m, p in modules.items()}
    state = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join(trail + [module])
        state[module] = "open"
        for other in graph[module]:
            visit(other, trail + [module])
        state[module] = "done"

    for module in graph:
        visit(module, [])
    assert "fastmlp.layout" not in modules  # the layout lives beside the contract now


def test_no_source_file_over_500_lines():
    long = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith((".py", ".pyx", ".pxi", ".h")) and name != "tuning.h":
                path = os.path.join(folder, name)
                if sum(1 for _ in open(path)) > 500:
                    long.append(os.path.relpath(path, ROOT))
    assert long == []
