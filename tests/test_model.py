"""The MLP interface: the seed notes' claims, training workloads, files, bad input."""
import numpy as np
import pytest

from fastmlp import MLP, DivergenceError, backends, datasets, optim

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([0, 1, 1, 0], dtype=float)


def xor_net(**kwargs):
    return MLP([2, 2, 1], activation="relu", output="identity", loss="mse", dtype="float64",
               **kwargs)


# ---------------------------------------------------------------- the seed's claims

def test_least_squares_linear_model_on_xor_outputs_one_half():
    design = np.c_[XOR_X, np.ones(4)]
    w1, w2, b = np.linalg.solve(design.T @ design, design.T @ XOR_Y)  # normal equations
    assert (w1, w2, b) == pytest.approx((0, 0, 0.5), abs=1e-12)
    linear = MLP([2, 1], output="identity", loss="mse", dtype="float64")
    linear.fit(XOR_X, XOR_Y, optimizer=optim.SGD(lr=0.3), epochs=3000, batch_size=4,
               shuffle=False)
    W, bias = linear.params
    assert W.ravel() == pytest.approx([0, 0], abs=1e-6)
    assert bias == pytest.approx([0.5], abs=1e-6)


def test_hand_set_relu_network_computes_xor_exactly(backend):
    model = xor_net(backend=backend.name)
    W, c, w, b = model.params
    W[...], c[...], w[...], b[...] = [[1, 1], [1, 1]], [0, -1], [[1], [-2]], [0]
    assert model.forward(XOR_X).ravel().tolist() == [0, 1, 1, 0]


def test_fit_learns_xor_from_a_random_start():
    # A 2-unit ReLU net fails from many starts (dead units); seed 9 is documented as one
    # that works with Adam(lr=0.05) over 1000 full-batch epochs.
    model = xor_net(seed=9)
    model.fit(XOR_X, XOR_Y, optimizer=optim.Adam(lr=0.05), epochs=1000, batch_size=4)
    assert np.abs(model.forward(XOR_X).ravel() - XOR_Y).max() < 0.05
    assert model.predict(XOR_X).ravel().round().tolist() == [0, 1, 1, 0]


def test_spiral_network_fits_where_a_linear_model_cannot():
    X, y = datasets.spiral()
    net = MLP([2, 100, 3], dtype="float64", seed=0)
    net.fit(X, y, optimizer=optim.Adam(lr=1e-2), epochs=300, batch_size=300)
    linear = MLP([2, 3], dtype="float64", seed=0)
    linear.fit(X, y, optimizer=optim.Adam(lr=1e-2), epochs=300, batch_size=300)
    assert net.evaluate(X, y)["accuracy"] >= 0.98
    assert 0.40 <= linear.evaluate(X, y)["accuracy"] <= 0.60


def test_digits_reach_97_percent_on_the_test_split():
    (X_train, y_train), (X_test, y_test) = datasets.digits()
    model = MLP([64, 100, 10], seed=0)
    history = model.fit(X_train, y_train, optimizer=optim.Adam(lr=1e-3), epochs=40,
                        batch_size=32, validation_data=(X_test, y_test))
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.97
    assert history.rows[-1]["val_accuracy"] == model.evaluate(X_test, y_test)["accuracy"]


def test_mnist_shaped_model_is_expressible():
    model = MLP([784, 512, 512, 10], activation="relu", output="softmax",
                loss="cross_entropy", dtype="float32", dropout=0.5)
    assert [p.shape for p in model.params] == [(784, 512), (512,), (512, 512), (512,),
                                               (512, 10), (10,)]
    X, y = datasets.mnist_like(64, seed=0)
    history = model.fit(X, y, optimizer=optim.RMSprop(lr=1e-3), epochs=1, batch_size=32)
    assert len(history.batch_losses) == 2


# ---------------------------------------------------------------- the interface

def test_history_records_epochs_and_batches():
    X, y = datasets.spiral(n_per_class=20)
    model = MLP([2, 8, 3], seed=0)
    history = model.fit(X, y, optimizer="adam", epochs=3, batch_size=16,
                        validation_data=(X, y))
    frame = history.to_frame()
    assert list(frame.columns) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                   "seconds"]
    assert frame["epoch"].tolist() == [1, 2, 3]
    assert len(history.batch_losses) == 3 * 4  # ceil(60 / 16) batches an epoch
    assert history.history["loss"] == frame["loss"].tolist()
    assert model.history_ is history


def test_batch_stochastic_and_minibatch_descent_take_the_expected_steps():
    X, y = datasets.spiral(n_per_class=10)
    for batch_size, steps in ((30, 1), (1, 30), (7, 5)):
        history = MLP([2, 4, 3]).fit(X, y, optimizer="sgd", epochs=1, batch_size=batch_size)
        assert len(history.batch_losses) == steps


def test_same_seed_same_training_and_shuffle_changes_it():
    X, y = datasets.spiral(n_per_class=20)
    run = lambda **kw: MLP([2, 8, 3], dropout=0.2, seed=5).fit(
        X, y, optimizer="adam", epochs=2, batch_size=10, **kw).batch_losses
    assert run() == run()
    assert run() != run(shuffle=False)


def test_loss_and_grads_align_with_params_and_include_penalties():
    X, y = datasets.spiral(n_per_class=5)
    plain = MLP([2, 4, 3], dtype="float64", seed=1)
    penalised = MLP([2, 4, 3], dtype="float64", seed=1, l1=0.01, l2=0.1)
    (loss, grads), (loss_pen, grads_pen) = (plain.loss_and_grads(X, y),
                                            penalised.loss_and_grads(X, y))
    assert [g.shape for g in grads] == [p.shape for p in plain.params]
    W1, b1, W2, b2 = plain.params
    penalty = sum(0.01 * np.abs(W).sum() + 0.05 * (W * W).sum() for W in (W1, W2))
    assert loss_pen == pytest.approx(loss + penalty, rel=1e-12)
    np.testing.assert_allclose(grads_pen[0], grads[0] + 0.01 * np.sign(W1) + 0.1 * W1)
    np.testing.assert_allclose(grads_pen[1], grads[1])  # biases are never penalised
    assert penalised.evaluate(X, y)["loss"] == pytest.approx(loss_pen, rel=1e-12)


def test_dropout_is_off_at_inference_and_on_while_training():
    X, y = datasets.spiral(n_per_class=10)
    model = MLP([2, 16, 3], dtype="float64", dropout=0.5, seed=0)
    assert np.array_equal(model.forward(X), model.forward(X))
    with_mask, _ = model.loss_and_grads(X, y, dropout_seed=1)
    without, _ = model.loss_and_grads(X, y)
    assert with_mask != without
    assert model.loss_and_grads(X, y, dropout_seed=1)[0] == with_mask


def test_one_hot_and_integer_labels_train_identically():
    X, y = datasets.spiral(n_per_class=10)
    a = MLP([2, 8, 3], seed=2).fit(X, y, epochs=2, batch_size=10).batch_losses
    b = MLP([2, 8, 3], seed=2).fit(X, np.eye(3)[y], epochs=2, batch_size=10).batch_losses
    assert a == b


def test_predict_and_evaluate():
    X, y = datasets.spiral(n_per_class=10)
    model = MLP([2, 8, 3], seed=0)
    P = model.predict_proba(X)
    assert P.shape == (30, 3) and np.allclose(P.sum(axis=1), 1, atol=1e-6)
    assert np.array_equal(model.predict(X), P.argmax(axis=1))
    assert model.evaluate(X, y)["accuracy"] == pytest.approx(np.mean(model.predict(X) == y))


def test_forward_handles_more_rows_than_one_inference_chunk():
    X, _ = datasets.mnist_like(5000, seed=1)
    model = MLP([784, 16, 10], dtype="float64")
    P = model.forward(X)
    np.testing.assert_allclose(P[4000:], model.forward(X[4000:]), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_work_arrays_start_at_a_cache_line(dtype):
    """layout.aligned_zeros: NumPy's large arrays start 16 bytes into a line; a model's
    work arrays (each batch size's, training or not) start at layout.ALIGNMENT, zeroed."""
    from fastmlp.backends import layout

    for size in (1, 15, 100_000):
        work = layout.aligned_zeros(size, dtype)
        assert work.shape == (size,) and work.dtype == dtype and work.flags.c_contiguous
        assert work.ctypes.data % layout.ALIGNMENT == 0 and not work.any()
    model = MLP([2, 100, 3], dtype=dtype, seed=0)
    for n, training in ((300, True), (30, True), (7, False)):
        assert model._workspace(n, training).work.ctypes.data % layout.ALIGNMENT == 0


def test_to_backend_keeps_parameters_and_random_state(backend):
    X, y = datasets.spiral(n_per_class=10)
    model = MLP([2, 8, 3], dtype="float64", dropout=0.2, seed=3)
    model.fit(X, y, epochs=1, batch_size=10)
    other = model.to_backend(backend.name)
    assert other.backend.name == backend.name
    np.testing.assert_allclose(other.forward(X), model.forward(X), rtol=1e-12)
    a = model.fit(X, y, epochs=1, batch_size=10).batch_losses
    b = other.fit(X, y, epochs=1, batch_size=10).batch_losses
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_save_and_load_round_trip(tmp_path):
    X, y = datasets.spiral(n_per_class=10)
    model = MLP([2, 8, 3], activation="tanh", dropout=0.1, l2=0.01, seed=4)
    model.fit(X, y, epochs=2, batch_size=10)
    model.save(tmp_path / "m.npz")
    loaded = MLP.load(tmp_path / "m.npz")
    assert loaded.config == model.config and loaded.sizes == model.sizes
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))
    with np.load(tmp_path / "m.npz", allow_pickle=False) as data:
        assert set(data.files) == {"theta", "sizes", "config"}


def test_fit_stops_on_divergence_with_history_and_finite_parameters():
    X, y = datasets.spiral(n_per_class=20)
    model = MLP([2, 32, 3], activation="identity", output="identity", loss="mse",
                dtype="float32", seed=0)
    with pytest.raises(DivergenceError,
                       match=r"at epoch \d+, batch \d+.*smaller learning rate") as info:
        model.fit(X, np.eye(3)[y], optimizer=optim.SGD(lr=1.5), epochs=200, batch_size=20)
    assert np.isfinite(model._theta).all()
    history = info.value.history
    assert history is model.history_
    diverged_epoch = int(str(info.value).split("at epoch ")[1].split(",")[0])
    assert diverged_epoch > 1 and len(history.rows) == diverged_epoch - 1  # finished epochs kept
    assert np.isfinite(history.batch_losses).all()


@pytest.mark.parametrize("make_optimizer", [
    lambda: optim.SGD(lr=0.1, momentum=0.9, dampening=0.5),
    lambda: optim.RMSprop(lr=1e-2, centered=True),
    lambda: optim.Adam(lr=1e-2, amsgrad=True),
    lambda: optim.Adagrad(lr=0.1, lr_decay=0.1)], ids=["sgd", "rmsprop", "adam", "adagrad"])
def test_make_step_is_loss_and_grads_then_optimizer_step(backend, make_optimizer):
    """The fused step keeps the optimizer's state and step count (first-step dampening,
    bias correction, learning-rate decay) as its per-parameter ``step`` does."""
    X, y = datasets.spiral(n_per_class=4)
    fused, plain = (MLP([2, 5, 3], backend=backend.name, dtype="float64", seed=6)
                    for _ in range(2))
    opt_fused, opt_plain = make_optimizer(), make_optimizer()
    step = fused.make_step(X, y, opt_fused)
    for t in range(1, 6):
        loss = step()
        want, _ = plain.loss_and_grads(X, y)
        opt_plain.step([plain._theta], [plain._grad], backend=backend.name)
        assert loss == pytest.approx(want, rel=1e-12)
        np.testing.assert_allclose(fused._theta, plain._theta, rtol=1e-12, atol=1e-15)
        state, steps = opt_fused._state["theta"]
        np.testing.assert_allclose(state, opt_plain._state[0][0], rtol=1e-12, atol=1e-15)
        assert steps == opt_plain._state[0][1] == t


def test_available_reports_every_backend_with_a_reason():
    status = backends.available()
    assert set(status) == {"python", "numpy", "numba", "cython"}
    assert status["numpy"] == (True, "")
    assert all(isinstance(ok, bool) and (ok or reason) for ok, reason in status.values())


# ---------------------------------------------------------------- bad input

def test_bad_constructor_arguments_are_named():
    cases = [
        (dict(sizes=[2]), ValueError, "sizes needs at least"),
        (dict(sizes=[2, 0, 3]), ValueError, r"sizes\[1\] must be >= 1"),
        (dict(sizes=[2, 3], backend="torch"), ValueError, "backend must be one of"),
        (dict(sizes=[2, 3], activation="gelu"), ValueError, "activation must be one of"),
        (dict(sizes=[2, 3], output="softplus"), ValueError, "output must be one of"),
        (dict(sizes=[2, 3], loss="hinge"), ValueError, "loss must be one of"),
        (dict(sizes=[2, 3], output="identity"), ValueError, "cross_entropy' needs output"),
        (dict(sizes=[2, 1]), ValueError, "softmax' needs at least 2"),
        (dict(sizes=[2, 3], dtype="int32"), ValueError, "dtype must be"),
        (dict(sizes=[2, 3], dtype=None), ValueError,
         "dtype must be 'float32' or 'float64', got None"),
        (dict(sizes=[2, 3], dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
        (dict(sizes=[2, 3], dropout=-0.1), ValueError, "dropout must be in"),
        (dict(sizes=[2, 3], l2=-1), ValueError, "l2 must be in"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            MLP(**kwargs)


BAD_DATA = [
    (np.ones((4, 3)), np.zeros(4), ValueError, r"X must have shape \(n_samples, 2\), got \(4, 3\)"),
    (np.ones(4), np.zeros(4), ValueError, r"X must have shape \(n_samples, 2\)"),
    (np.array([["a", "b"]] * 4), np.zeros(4), TypeError, "X must hold real numbers"),
    (np.array([[None, 1]] * 4), np.zeros(4), TypeError, "X must hold real numbers"),
    (np.array([[np.nan, 1]] * 4), np.zeros(4), ValueError, "X must be finite, got nan"),
    (np.array([[np.inf, 1]] * 4), np.zeros(4), ValueError, "X must be finite, got inf"),
    (np.ones((0, 2)), np.zeros(0), ValueError, "X must not be empty"),
    (np.ones((4, 2)), np.zeros(3), ValueError, "y has 3 rows but X has 4"),
    (np.ones((4, 2)), np.array([0, 1, 2, 3]), ValueError, r"labels must be in 0..2, got 3"),
    (np.ones((4, 2)), np.array([0, -1, 2, 1]), ValueError, r"labels must be in 0..2, got -1"),
    (np.ones((4, 2)), np.array([0, 0.5, 1, 1]), ValueError, "whole numbers"),
    (np.ones((4, 2)), np.array([0, np.nan, 1, 1]), ValueError, "y must be finite"),
    (np.ones((4, 2)), np.ones((4, 3)), ValueError, "rows must be one-hot or probabilities"),
    (np.ones((4, 2)), np.ones((4, 2)), ValueError, r"y must have shape \(4, 3\)"),
]


@pytest.mark.parametrize("X, y, error, message", BAD_DATA,
                         ids=[m.split(",")[0][:30] for *_, m in BAD_DATA])
def test_bad_data_is_refused_by_fit_and_evaluate(X, y, error, message):
    model = MLP([2, 4, 3])
    with pytest.raises(error, match=message):
        model.fit(X, y)
    with pytest.raises(error, match=message):
        model.evaluate(X, y)


def test_bad_fit_settings_are_refused():
    X, y = datasets.spiral(n_per_class=4)
    model = MLP([2, 4, 3])
    for kwargs, message in [(dict(batch_size=0), r"batch_size must be in \[1, 12\], got 0"),
                            (dict(batch_size=13), r"batch_size must be in \[1, 12\], got 13"),
                            (dict(epochs=0), "epochs must be >= 1"),
                            (dict(epochs=1.5), "epochs must be an integer"),
                            (dict(optimizer="lbfgs"), "optimizer must be one of"),
                            (dict(validation_data=(X,)), "validation_data must be a pair"),
                            (dict(validation_data=(X[:, :1], y)),
                             r"validation_data\[0\] must have shape")]:
        with pytest.raises((ValueError, TypeError), match=message):
            model.fit(X, y, **kwargs)


def test_binary_and_regression_targets_are_checked():
    binary = MLP([2, 3, 1], output="sigmoid")
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        binary.fit(np.ones((3, 2)), np.array([0, 1, 2]))
    regression = MLP([2, 3, 2], output="identity", loss="mse")
    with pytest.raises(ValueError, match=r"y must have shape \(3, 2\)"):
        regression.fit(np.ones((3, 2)), np.ones(3))
    regression.fit(np.ones((3, 2)), np.full((3, 2), 7.5))  # any finite targets


def test_load_refuses_a_file_that_does_not_match(tmp_path):
    MLP([2, 4, 3]).save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as data:
        np.savez(tmp_path / "bad.npz", theta=data["theta"][:-1], sizes=data["sizes"],
                 config=data["config"])
    with pytest.raises(ValueError, match="theta has 26 values, the layer sizes need 27"):
        MLP.load(tmp_path / "bad.npz")
