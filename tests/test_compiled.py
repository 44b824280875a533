"""Promises of every compiled backend: no allocation in a training step, and both
matrix-product paths (BLAS and the own blocked loop) right for any shape."""
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from fastmlp import MLP, datasets, optim
from fastmlp.backends import contract, cpu, layout, tuning


@pytest.mark.parametrize("optimizer", [optim.RMSprop(lr=1e-3), optim.Adam(),
                                       optim.SGD(lr=0.1, momentum=0.9), optim.Adagrad()],
                         ids=["rmsprop", "adam", "sgd", "adagrad"])
def test_training_step_allocates_no_numpy_arrays(compiled_backend, optimizer):
    X, y = datasets.mnist_like(64, seed=0)
    step = MLP([784, 32, 16, 10], backend=compiled_backend.name,
               dropout=0.2).make_step(X, y, optimizer)
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


# (m, k, n): edges of every tile and block size of the blocked loops (row tiles of 6 or 12,
# column panels of 8, 16 or 32, K blocks of at most 256).
BLOCKED_SHAPES = [(256, 784, 512), (5, 7, 3), (33, 17, 600), (1, 1, 1), (5, 3, 7), (67, 129, 33),
                  (7, 513, 17), (13, 257, 1), (12, 5, 32), (25, 300, 65), (11, 40, 31)]


@pytest.mark.parametrize("shape", BLOCKED_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kernel", ["matmul_blocked", "matmul_blas", "matmul"])
def test_matmul_paths_agree_with_numpy(compiled_backend, kernel, shape, dtype):
    m, k, n = shape
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    getattr(compiled_backend.raw, kernel)(A, B, out)
    np.testing.assert_allclose(out, A @ B, rtol=1e-4 if dtype == np.float32 else 1e-10,
                               atol=1e-3 if dtype == np.float32 else 1e-10)


# Numba compiles the tile of the kind it is told (without its cache); the Cython extension
# has the building machine's kind's (test_twins checks it is tuning.KIND's).
BLOCKED_CHECK = """
import numpy as np
from fastmlp.backends import tuning
from fastmlp.backends.numba import matmul_blocked
rng = np.random.default_rng(0)
for m, k, n in SHAPES:
    for dtype in (np.float32, np.float64):
        A, B = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
        out = np.full((m, n), np.nan, dtype)
        matmul_blocked(A, B, out)
        np.testing.assert_allclose(out, A @ B, rtol=1e-4, atol=1e-3)
print(tuning.KIND, tuning.TILE_ROWS, tuning.TILE_VECTOR_BYTES)
"""


@pytest.mark.parametrize("kind", cpu.KINDS)
def test_numba_blocked_tile_of_every_kind_agrees_with_numpy(kind, tmp_path):
    # An empty cache: Numba keys its entries on the kernel's file, not on tuning's tile.
    environ = dict(os.environ, FASTMLP_MACHINE_KIND=kind, NUMBA_CACHE_DIR=str(tmp_path))
    code = f"SHAPES = {BLOCKED_SHAPES!r}\n" + BLOCKED_CHECK
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    tile = tuning.TILE_BY_KIND[kind]
    assert done.stdout.split() == [kind, str(tile["TILE_ROWS"]), str(tile["TILE_VECTOR_BYTES"])]


#: (n_samples, fan_in, fan_out): narrow inner dimensions and few output columns, where the
#: compiled backends run their own loops instead of BLAS (forward and both backward products).
NARROW = [(300, 2, 100), (300, 100, 3), (300, 3, 100), (301, 1, 9), (7, 4, 300), (303, 50, 1),
          (5, 640, 7), (1000, 4, 8), (45, 45, 45)]


@pytest.mark.parametrize("act", [contract.IDENTITY, contract.RELU], ids=["identity", "relu"])
@pytest.mark.parametrize("shape", NARROW, ids=lambda s: "x".join(map(str, s)))
def test_linear_kernels_agree_with_numpy_on_narrow_shapes(compiled_backend, shape, act, dtype):
    n, i, o = shape
    rng = np.random.default_rng(n + i + o)
    X, W, b, dZ = (rng.normal(size=s).astype(dtype) for s in [(n, i), (i, o), (o,), (n, o)])
    out = compiled_backend.linear_forward(X, W, b, act, np.full((n, o), np.nan, dtype))
    Z = X @ W + b
    dW, db, dX = compiled_backend.linear_backward(X, W, dZ, np.full((i, o), np.nan, dtype),
                                                  np.full(o, np.nan, dtype),
                                                  np.full((n, i), np.nan, dtype))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for got, want in [(out, Z if act == contract.IDENTITY else np.maximum(Z, 0)), (dW, X.T @ dZ),
                      (db, dZ.sum(axis=0)), (dX, dZ @ W.T)]:
        np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("fan_in", [1, 2, 3, 4])
@pytest.mark.parametrize("act", ["identity", "relu", "sigmoid", "tanh", "softmax"])
def test_linear_forward_on_narrow_inputs_agrees_with_numpy(compiled_backend, reference, fan_in,
                                                           act, dtype):
    """Few inputs: the product loop adds the bias (and takes the relu) in its own pass."""
    from fastmlp.backends import contract

    rng = np.random.default_rng(fan_in)
    X, W, b = (rng.normal(size=s).astype(dtype) for s in [(300, fan_in), (fan_in, 100), (100,)])
    code = contract.ACTIVATIONS.index(act)
    got = compiled_backend.linear_forward(X, W, b, code, np.full((300, 100), np.nan, dtype))
    want = reference.linear_forward(X, W, b, code, np.empty((300, 100), dtype))
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("sizes, n_samples", [([2, 100, 3], 300), ([3, 40, 4, 2], 64)],
                         ids=["spiral", "deeper"])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_relu_networks_with_narrow_layers_agree_with_numpy(compiled_backend, sizes, n_samples,
                                                           dropout, dtype):
    """Shapes where the backward pass fuses the relu derivative into dX = dZ @ W.T (few
    outputs) and db into dW = X.T @ dZ (few inputs), with dropout's mask between them."""
    rng = np.random.default_rng(len(sizes))
    X, y = rng.normal(size=(n_samples, sizes[0])), rng.integers(0, sizes[-1], n_samples)
    kwargs = dict(sizes=sizes, dtype=dtype.name, dropout=dropout, seed=5)
    results = [MLP(backend=name, **kwargs).loss_and_grads(X, y, dropout_seed=3)
               for name in (compiled_backend.name, "numpy")]
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert results[0][0] == pytest.approx(results[1][0], rel=tol["rtol"])
    for got, want in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(got, want, **tol)


def test_a_narrow_relu_pair_is_stored_units_by_samples(compiled_backend, dtype):
    """The training step of one ReLU hidden layer between few inputs and classes runs the
    fused kernel (the layer-by-layer one stores samples x units): the hidden activations and
    the logits transposed in their work regions (the hidden layer's rows padded to
    ``tuning.pair_columns``: 48 for 40 samples), the probabilities as the contract has them."""
    sizes, n = [2, 13, 3], 40
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, 2)).astype(dtype), rng.integers(0, 3, n)
    model = MLP(sizes, backend=compiled_backend.name, dtype=dtype.name, seed=0)
    plan = layout.plan(sizes, n)
    W1, b1, W2, b2 = (p.copy() for p in layout.param_views(model._theta, plan.layers))
    model.make_step(X, y, optim.SGD(lr=0.1))()
    work = model._workspace(n, training=True).work

    def region(row, column, shape):
        return work[row[column]:row[column] + np.prod(shape)].reshape(shape)

    H = np.maximum(X @ W1 + b1, 0)
    Z = H @ W2 + b2
    P = np.exp(Z - Z.max(1, keepdims=True))
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    hidden = region(plan.layers[0], contract.A, (13, tuning.pair_columns(n)))
    np.testing.assert_allclose(hidden[:, :n], H.T, **tol)
    np.testing.assert_allclose(region(plan.layers[1], contract.Z, (3, n)), Z.T, **tol)
    np.testing.assert_allclose(region(plan.layers[1], contract.A, (n, 3)),
                               P / P.sum(1, keepdims=True), **tol)


@pytest.mark.parametrize("scale", [0.1, 30.0])
def test_the_narrow_pairs_vectorised_log_keeps_the_loss_to_its_last_bits(compiled_backend,
                                                                         reference, scale):
    """The narrow-pair softmax takes each sample's log-sum-exp by its own log (a loop that
    vectorises): the loss agrees with numpy's to rounding, for logits close together (sums
    of exp near the number of classes) and far apart (near 1), and a NaN logit gives NaN."""
    sizes, n = [2, 40, 3], 300
    plan = layout.plan(sizes, n, training=True)
    rng = np.random.default_rng(2)
    X, theta = rng.normal(size=(n, 2)), scale * rng.normal(size=plan.theta_size)
    Y = np.eye(3)[rng.integers(0, 3, n)]
    spec = np.array([contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY])
    assert tuning.narrow_pair(n, plan.layers, spec) == (2, 3)

    def loss(kernels, theta):
        return kernels.raw.network_loss_and_grads(X, Y, theta, np.zeros_like(theta),
                                                  np.zeros(plan.work_size), plan.layers, spec,
                                                  np.zeros(3))
    assert loss(compiled_backend, theta) == pytest.approx(loss(reference, theta), rel=1e-13)
    theta[-1] = np.nan  # the last class's bias: a NaN logit for every sample
    assert np.isnan(loss(compiled_backend, theta))


@pytest.mark.parametrize("n", [8, 9, 17, 47, 300])
def test_the_narrow_pair_agrees_with_numpy_whatever_its_rows_padding(compiled_backend,
                                                                    reference, n, dtype):
    """The hidden layer's rows padded to ``tuning.pair_columns(n)`` (8 samples: twice as
    long, its work region and its gradient's), 13 units (four a pass, then one): loss,
    gradients, logits and probabilities as numpy's; the padding reaches no output region."""
    sizes = [3, 13, 4]
    plan = layout.plan(sizes, n, training=True)
    spec = np.array([contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY])
    assert tuning.narrow_pair(n, plan.layers, spec) == (3, 4)
    rng = np.random.default_rng(n)
    X, theta = rng.normal(size=(n, 3)).astype(dtype), rng.normal(size=plan.theta_size)
    theta = theta.astype(dtype)
    Y = np.eye(4, dtype=dtype)[rng.integers(0, 4, n)]
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    results = []
    for kernels in (compiled_backend, reference):
        grad, work = np.zeros_like(theta), np.full(plan.work_size, np.nan, dtype)
        loss = kernels.raw.network_loss_and_grads(X, Y, theta, grad, work, plan.layers, spec,
                                                  np.zeros(3))
        out = plan.layers[1]
        results.append((loss, grad, work[out[contract.A]:out[contract.A] + 4 * n]))
    assert results[0][0] == pytest.approx(results[1][0], rel=tol["rtol"])
    for got, want in zip(results[0][1:], results[1][1:]):
        np.testing.assert_allclose(got, want, **tol)


def test_narrow_pair_scratch_bound_counts_the_inputs(compiled_backend, reference):
    """Four inputs, one class, 1300 samples: X.T (5200 numbers) does not fit the fused
    step's stack scratch (4096), so the layer-by-layer step runs (its hidden layer stored
    samples x units), and agrees with numpy."""
    sizes, n = [4, 6, 1], 1300
    plan = layout.plan(sizes, n, training=True)
    rng = np.random.default_rng(1)
    X, theta, Y = rng.normal(size=(n, 4)), rng.normal(size=plan.theta_size), np.ones((n, 1))
    spec = np.array([contract.RELU, contract.SOFTMAX, contract.CROSS_ENTROPY])
    results = []
    for kernels in (compiled_backend, reference):
        grad, work = np.zeros_like(theta), np.zeros(plan.work_size)
        loss = kernels.raw.network_loss_and_grads(X, Y, theta, grad, work, plan.layers, spec,
                                                  np.zeros(3))
        results.append((loss, grad))
        if kernels is compiled_backend:
            W1, b1 = layout.param_views(theta, plan.layers)[:2]
            row = plan.layers[0]
            hidden = work[row[contract.A]:row[contract.A] + n * 6].reshape(n, 6)
            np.testing.assert_allclose(hidden, np.maximum(X @ W1 + b1, 0), rtol=1e-10)
    assert results[0][0] == pytest.approx(results[1][0], abs=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)
    kernel, extra = compiled_backend.step_kernel(X, plan.layers, spec)
    assert kernel is compiled_backend.raw.layered_train_step  # numba: with narrow loops
    assert extra == {"numba": (True,), "cython": ()}[compiled_backend.name]


def denormal_model(backend):
    """A 1-1 linear network whose one weight is a float32 denormal, its bias 0: one SGD
    step on x = 1, y = 0 moves the weight by a denormal amount, or flushes it to 0."""
    model = MLP([1, 1], output="identity", loss="mse", backend=backend, dtype="float32")
    W, b = model.params
    W[...], b[...] = np.finfo(np.float32).tiny / 4, 0
    return model, np.ones((1, 1), np.float32), np.zeros((1, 1), np.float32)


@pytest.mark.parametrize("path", ["make_step", "fit"])
def test_training_kernels_flush_denormals_and_restore_the_callers_mode(compiled_backend,
                                                                       path):
    def train(backend):
        model, X, Y = denormal_model(backend)
        if path == "make_step":
            model.make_step(X, Y, optim.SGD(lr=0.25))()
        else:
            model.fit(X, Y, optim.SGD(lr=0.25), epochs=1, batch_size=1, shuffle=False)
        return float(model.params[0][0, 0])

    assert train("numpy") != 0  # the reference keeps the denormal step
    assert train(compiled_backend.name) == 0.0  # the kernel read the weight as 0 (DAZ)
    tiny = np.array(np.finfo(np.float32).tiny)
    assert tiny / np.float32(4) > 0  # the caller's own arithmetic keeps its denormals
