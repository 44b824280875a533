"""What only the Cython backend promises: it is reported (not fatal) when unbuilt, and no
input crashes the process (see also test_compiled.py)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cython_backend():
    return require("cython")


def run_python(code):
    """Run ``code`` in a fresh interpreter: a crash there fails the test, not pytest."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ROOT})


def test_unbuilt_extension_is_reported_with_the_build_command():
    result = run_python("""
        import sys
        class Unbuilt:  # behaves like a checkout where setup.py never ran
            def find_spec(self, name, path=None, target=None):
                if name == "fastmlp.backends.cython._kernels":
                    raise ImportError("No module named 'fastmlp.backends.cython._kernels'")
        sys.meta_path.insert(0, Unbuilt())
        from fastmlp import MLP, backends, datasets
        ok, reason = backends.available()["cython"]
        print(ok, "|", reason)
        X, y = datasets.spiral(n_per_class=10)
        print(MLP([2, 8, 3], backend="numpy").fit(X, y, epochs=1).rows[-1]["epoch"])
    """)
    assert result.returncode == 0, result.stderr
    status, trained = result.stdout.strip().splitlines()
    assert status.startswith("False |") and "pip install -e ." in status
    assert trained == "1"


def test_bad_arrays_never_crash_the_process(cython_backend):
    """Every case must end in a clean Python exception or a right answer, in a subprocess."""
    result = run_python("""
        import numpy as np
        from fastmlp import backends
        cy = backends.get("cython")
        f64, f32 = np.ones((3, 4)), np.ones((3, 4), np.float32)
        cases = [
            lambda: cy.matmul(f64, np.ones((5, 2)), None),
            lambda: cy.matmul(f64, np.ones((4, 2), np.float32)),
            lambda: cy.matmul(f64[:, ::2], np.ones((2, 2))),
            lambda: cy.matmul(np.ones((0, 4)), np.ones((4, 2))),
            lambda: cy.matmul(f64, np.ones((4, 0))),
            lambda: cy.linear_forward(f32, np.ones((4, 2), np.float32), np.ones(3, np.float32), 1),
            lambda: cy.linear_backward(f64, np.ones((4, 2)), np.ones((3, 2)), np.ones((4, 2)),
                                       np.ones(2), np.ones((3, 5))),
            lambda: cy.activation_forward(99, f64, np.empty_like(f64)),
            lambda: cy.softmax_cross_entropy(f64, np.ones((3, 5)), f64.copy(), f64.copy()),
            lambda: cy.adam_update(np.ones(4), np.ones(5), np.zeros((3, 4)), .1, .9, .99, 1e-8,
                                   1., 0., False),
            lambda: cy.sgd_update(np.ones(4)[::-1], np.ones(4), np.zeros(4), .1, 0., 0., False, 0.),
            lambda: cy.network_forward(f64, np.ones(3), np.ones(3), np.zeros((1, 9), np.int64),
                                       np.zeros(3, np.int64)),
        ]
        for case in cases:
            try:
                out = case()
                print("answer", np.shape(out))
            except (TypeError, ValueError) as error:
                print("error", type(error).__name__)
        read_only = np.ones((3, 4)); read_only.flags.writeable = False
        print("answer", cy.matmul(read_only, np.ones((4, 2))).tolist()[0])
    """)
    assert result.returncode == 0, f"crashed ({result.returncode}): {result.stderr[-2000:]}"
    lines = result.stdout.strip().splitlines()
    assert lines[2] == "answer (3, 2)"  # a non-contiguous input is copied, then used
    assert lines[-1] == "answer [4.0, 4.0]"  # read-only inputs are fine
    assert sum(line.startswith("error") for line in lines) == len(lines) - 2


def test_raw_train_step_refuses_arrays_it_cannot_read(cython_backend):
    """The raw fused step takes ndarrays (cheaper than memoryviews): it still checks each
    one's dtype and contiguity before reading it."""
    from fastmlp import MLP, datasets, optim

    X, y = datasets.spiral(n_per_class=4)
    model = MLP([2, 5, 3], backend="cython", dtype="float32")
    step = model.make_step(X, y, optim.Adam())
    step()
    ws, Y = model._workspace(len(X), True), np.eye(3, dtype=np.float32)[y]
    args = [X.astype(np.float32), Y, model._theta, model._grad, ws.work, ws.layers,
            model._spec, model._coefs, 2, np.zeros((3, model._theta.size), np.float32),
            np.zeros(7)]
    for index, bad in [(0, X.astype(np.float64)), (1, np.asfortranarray(Y)),
                       (5, ws.layers.astype(np.int32)), (10, np.zeros(7, np.float32))]:
        with pytest.raises(ValueError, match="expected a C-contiguous"):
            cython_backend.raw.network_train_step(*args[:index], bad, *args[index + 1:])
