"""The public kernel boundary of every backend: bad arrays get clear errors before any
kernel runs, good ones of any shape get the reference answer."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastmlp import backends
from fastmlp.backends import layout
from fastmlp.backends import contract


def arrays(*shapes, dtype=np.float64):
    rng = np.random.default_rng(0)
    return [rng.normal(size=shape).astype(dtype) for shape in shapes]


def test_every_backend_module_follows_the_contract(backend):
    for name, spec in contract.KERNELS.items():
        assert callable(getattr(backend.raw, name)), name
        assert getattr(backend, name).__doc__ == spec.stub.__doc__


def test_a_kernel_may_add_trailing_parameters_only_with_defaults():
    """A backend's own compile-time choices (numba's ``narrow``) may follow the contract's
    parameters, with defaults, so that a contract call still binds; nothing else differs."""
    import types

    from fastmlp.backends import _contract_problems

    numpy_module = backends.get("numpy").raw

    def module_with(matmul):
        module = types.SimpleNamespace(**{n: getattr(numpy_module, n) for n in contract.KERNELS})
        module.matmul = matmul
        return module

    assert _contract_problems(module_with(lambda A, B, out, narrow=True: None)) == []
    for wrong in (lambda A, B, out, narrow: None, lambda A, B: None, lambda B, A, out: None):
        problems = _contract_problems(module_with(wrong))
        assert len(problems) == 1 and "differs from the contract matmul('A', 'B', 'out')" in \
            problems[0], problems


def test_the_checked_kernels_pass_the_trailing_arguments_of_the_hook_kernel_extra():
    """A module's own ``kernel_extra`` gives each checked call its compile-time choices;
    without it, a checked kernel is called with the contract's arguments alone."""
    import types

    numpy_module = backends.get("numpy").raw
    calls = []
    module = types.SimpleNamespace(**{n: getattr(numpy_module, n) for n in contract.KERNELS})
    module.matmul = lambda A, B, out, narrow=True: calls.append(narrow)
    A, B, out = arrays((2, 3), (3, 4), (2, 4))
    backends.Backend("plain", module).matmul(A, B, out)
    module.kernel_extra = lambda name, args: (args[0].shape,) if name == "matmul" else ()
    backends.Backend("with extra", module).matmul(A, B, out)
    assert calls == [True, (2, 3)]


def test_unknown_backend_names_the_choices():
    choices = r"\['cython', 'numba', 'numpy', 'python'\]"
    with pytest.raises(ValueError, match=rf"backend must be one of {choices}, got 'jax'"):
        backends.get("jax")


@pytest.mark.parametrize("call, error, message", [
    (lambda b: b.matmul([[1.0]], np.ones((1, 1)), np.ones((1, 1))), TypeError,
     "matmul: A must be a numpy.ndarray, got list"),
    (lambda b: b.matmul(*arrays((2, 3), (4, 5), (2, 5))), ValueError,
     r"matmul: B has shape \(4, 5\): dimension 'k' must be 3"),
    (lambda b: b.matmul(*arrays((2, 3)), *arrays((3, 5), (2, 5), dtype=np.float32)), TypeError,
     "matmul: B must have dtype float64 like the arrays before it, got float32"),
    (lambda b: b.matmul(np.ones((2, 3), np.int64), np.ones((3, 2)), np.ones((2, 2))), TypeError,
     "matmul: A must have dtype float32 or float64, got int64"),
    (lambda b: b.matmul(*arrays((2, 3), (3, 4)), np.ones((4, 2)).T), ValueError,
     "matmul: out is written by the kernel and must be C-contiguous"),
    (lambda b: b.matmul(np.ones((0, 3)), *arrays((3, 4), (0, 4))), ValueError,
     r"matmul: A must not be empty, got shape \(0, 3\)"),
    (lambda b: b.activation_forward(7, *arrays((2, 2), (2, 2))), ValueError,
     r"act must be a code 0..4"),
    (lambda b: b.linear_forward(*arrays((2, 3), (3, 4), (3,), (2, 4))[:3], 1,
                                np.ones((2, 4))), ValueError, "dimension 'o' must be 4"),
    (lambda b: b.adam_update(*arrays((5,), (5,), (2, 5)), 0.1, 0.9, 0.999, 1e-8, 1.0, 0.0, False),
     ValueError, r"state has shape \(2, 5\): dimension '3' must be 3"),
], ids=["not-an-array", "shape", "mixed-dtypes", "int-dtype", "non-contiguous-out", "zero-size",
        "bad-code", "bias-shape", "state-rows"])
def test_public_kernels_refuse_bad_arrays(backend, call, error, message):
    with pytest.raises(error, match=message):
        call(backend)


def test_read_only_output_is_refused(backend):
    out = np.ones((2, 4))
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is written by the kernel and must be writeable"):
        backend.matmul(*arrays((2, 3), (3, 4)), out)


def test_non_contiguous_and_read_only_inputs_are_accepted(backend, reference):
    A, B = arrays((3, 8), (5, 4))
    A_strided, B_transposed = A[:, ::2], B.T
    B_transposed.flags.writeable = False
    got = backend.matmul(A_strided, B_transposed)
    np.testing.assert_allclose(got, A_strided @ B_transposed, rtol=1e-12)


def test_missing_outputs_are_allocated(backend):
    X, W, b = arrays((4, 3), (3, 2), (2,))
    out = backend.linear_forward(X, W, b, contract.RELU)
    np.testing.assert_allclose(out, np.maximum(X @ W + b, 0), rtol=1e-12)
    dW, db, dX = backend.linear_backward(X, W, np.ones((4, 2)), dX=np.empty((4, 3)))
    np.testing.assert_allclose(dW, X.T @ np.ones((4, 2)), rtol=1e-12)
    assert dX.shape == (4, 3)


def test_network_kernels_refuse_a_layout_for_another_batch(backend):
    plan = layout.plan([3, 4, 2], 5, training=True)
    X, Y = arrays((6, 3), (6, 2))
    theta, work = np.zeros(plan.theta_size), np.zeros(plan.work_size)
    spec, coefs = np.array([1, 4, 0]), np.zeros(3)
    with pytest.raises(ValueError,
                       match=r"work: layer 1 needs 72 entries for a batch of 6, work has 70"):
        backend.network_loss_and_grads(X, Y, theta, np.zeros_like(theta), work, plan.layers,
                                       spec, coefs)
    inference = layout.plan([3, 4, 2], 6, training=False)
    with pytest.raises(ValueError, match=r"training=True"):
        backend.network_loss_and_grads(X, Y, theta, np.zeros_like(theta),
                                       np.zeros(inference.work_size), inference.layers, spec,
                                       coefs)
    with pytest.raises(ValueError, match=r"spec\[2\] must be a code 0..2"):
        backend.network_forward(X, theta, np.zeros(inference.work_size), inference.layers,
                                np.array([1, 4, 9]))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 9), k=st.integers(1, 9), n=st.integers(1, 9),
       act=st.sampled_from(range(len(contract.ACTIVATIONS))))
def test_any_shape_agrees_with_numpy(backend, m, k, n, act):
    X, W, b = arrays((m, k), (k, n), (n,))
    want = backends.get("numpy").linear_forward(X, W, b, act)
    np.testing.assert_allclose(backend.linear_forward(X, W, b, act), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.matmul(X, W), X @ W, rtol=1e-10, atol=1e-12)
