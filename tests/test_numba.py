"""What only the Numba backend promises: no allocation in a training step, nothing compiled
at import, cached kernels, both matmul paths, and kernels that stay valid Python."""
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
from conftest import require

from fastmlp import MLP, datasets, optim

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


def dispatchers(module):
    return {name: value for name, value in vars(module).items()
            if type(value).__name__ in ("CPUDispatcher", "Dispatcher")}


@pytest.mark.parametrize("optimizer", [optim.RMSprop(lr=1e-3), optim.Adam(), optim.SGD(lr=0.1, momentum=0.9)],
                         ids=["rmsprop", "adam", "sgd"])
def test_training_step_allocates_no_numpy_arrays(numba_backend, optimizer):
    X, y = datasets.mnist_like(64, seed=0)
    step = MLP([784, 32, 16, 10], backend="numba", dropout=0.2).make_step(X, y, optimizer)
    step(), step()  # compile and warm up
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(10):
            step()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    numpy_domain = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    grown = [d for d in after.filter_traces([numpy_domain]).compare_to(
        before.filter_traces([numpy_domain]), "traceback") if d.size_diff > 0]
    assert grown == []


def test_compiled_code_allocates_nothing_in_a_step(numba_backend):
    out = run_python("""
        from numba.core.runtime import rtsys
        from fastmlp import MLP, datasets, optim
        X, y = datasets.mnist_like(64, seed=0)
        step = MLP([784, 32, 10], backend="numba", dropout=0.3).make_step(X, y, optim.Adam())
        step(); step()
        before = rtsys.get_allocation_stats().alloc
        for _ in range(20):
            step()
        print(rtsys.get_allocation_stats().alloc - before)
    """, NUMBA_NRT_STATS="1")
    # Numba wraps each array passed in from Python in one small MemInfo header: 8 for
    # network_loss_and_grads and 3 for adam_update. Anything more is an allocation made
    # inside compiled code (a temporary, or a copy before np.dot).
    assert int(out) == 20 * (8 + 3)


def test_import_compiles_nothing_and_every_kernel_is_cached(numba_backend):
    out = run_python("""
        import fastmlp
        from fastmlp import backends
        module = backends.get("numba").raw
        compiled = [n for n, f in vars(module).items() if getattr(f, "signatures", None)]
        print(compiled)
    """)
    assert out.strip() == "[]"
    kernels = dispatchers(numba_backend.raw)
    assert len(kernels) > 20
    assert {name for name, d in kernels.items() if type(d._cache).__name__ == "NullCache"} == set()


@pytest.mark.parametrize("shape", [(256, 784, 512), (5, 7, 3), (33, 17, 65), (1, 1, 1)])
@pytest.mark.parametrize("kernel", ["matmul_blocked", "matmul_blas", "matmul"])
def test_matmul_paths_agree_with_numpy(numba_backend, kernel, shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    getattr(numba_backend.raw, kernel)(A, B, out)
    np.testing.assert_allclose(out, A @ B, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-3 if dtype == np.float32 else 1e-10)


def test_kernels_stay_valid_python_without_the_jit(numba_backend):
    """NUMBA_DISABLE_JIT=1 runs the kernels as plain Python: the suite must still pass."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_backends.py",
         "-k", "numba and float64 and (kernel_agrees or composition or twenty)"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT, "NUMBA_DISABLE_JIT": "1"})
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout.splitlines()[-1]
