"""``network_train_epoch`` on every backend against per-batch stepping with the NumPy
reference's ``network_train_step``: losses, parameters, optimizer state, correct counts, the
divergence rule; its checks of bad input; and fit's steady state, which allocates nothing."""
import tracemalloc
import weakref

import numpy as np
import pytest
from conftest import require, tolerance

from fastmlp import MLP, datasets, optim
from fastmlp.backends import contract, layout
from fastmlp.callbacks import Callback
from fastmlp.training import EpochRunner

#: sizes, rows, batch, dropout: a tail batch, dropout, and the narrow pair (full batches of
#: 16 and a tail of 8 take it; a tail of 5 does not).
CASES = {"tail": ([3, 7, 4], 23, 5, 0.0), "dropout": ([3, 6, 5, 2], 19, 4, 0.4),
         "pair": ([2, 13, 3], 40, 16, 0.0), "pair_tail": ([2, 13, 3], 37, 16, 0.0),
         "one_output": ([2, 4, 1], 12, 4, 0.0)}


def arguments(case, dtype, epochs=2, seed=0, lr=0.05, scale=1.0):
    """network_train_epoch's arguments: Adam over shuffled epochs (for a large ``lr``, SGD
    on an identity output under squared error, which overflows)."""
    sizes, n, b, dropout = CASES[case]
    rng = np.random.default_rng(seed)
    X = (scale * rng.normal(size=(n, sizes[0]))).astype(dtype)
    classes = rng.integers(0, max(2, sizes[-1]), n)
    Y = (classes[:, None] == 1 if sizes[-1] == 1 else np.eye(sizes[-1])[classes]).astype(dtype)
    full, last = (layout.plan(sizes, m, dropout, True) for m in (b, n % b or b))
    theta = (0.5 * rng.normal(size=full.theta_size)).astype(dtype)
    output = contract.SIGMOID if sizes[-1] == 1 else contract.SOFTMAX
    spec = np.array([contract.RELU, output, contract.CROSS_ENTROPY] if lr < 1 else
                    [contract.RELU, contract.IDENTITY, contract.MSE])
    opt = optim.Adam(lr=lr) if lr < 1 else optim.SGD(lr=lr)
    c, units = -(-n // b), sum(sizes[1:-1]) if dropout else 0
    table = opt.scalar_table("theta", theta.copy())
    return dict(X=X, Y=Y, order=np.stack([rng.permutation(n) for _ in range(epochs)]),
                Xb=np.zeros((b, sizes[0]), dtype), Yb=np.zeros((b, sizes[-1]), dtype),
                theta=theta, grad=np.zeros_like(theta), work=np.zeros(full.work_size, dtype),
                layers=np.stack([full.layers, last.layers]), spec=spec,
                coefs=np.array([dropout, 0.0, 0.001]), optimizer=opt.code,
                state=np.zeros((opt.state_rows, theta.size), dtype),
                scalars=table.rows(epochs * c).reshape(epochs, c, -1).copy(),
                uniforms=rng.random((epochs, n * units)).astype(dtype) if units else None,
                saved=np.zeros((1 + opt.state_rows, theta.size), dtype),
                losses=np.zeros((epochs, c)), correct=np.zeros(epochs, np.int64))


def stepped(a):
    """The reference: every batch one network_train_step of the NumPy backend; returns the
    losses, the correct counts and theta before every step (and after the last)."""
    numpy = require("numpy")
    theta, state, b = a["theta"].copy(), a["state"].copy(), a["Xb"].shape[0]
    losses, correct, thetas = np.zeros_like(a["losses"]), np.zeros_like(a["correct"]), []
    for e, rows in enumerate(a["order"]):
        at = 0
        for j, start in enumerate(range(0, len(rows), b)):
            r = rows[start:start + b]
            plan = a["layers"][0 if len(r) == b else 1]
            work = a["work"].copy()
            for region in layout.views(work, plan, layout.U, len(r)):
                if region is not None:
                    region[...] = a["uniforms"][e, at:at + region.size].reshape(region.shape)
                    at += region.size
            thetas.append(theta.copy())
            losses[e, j] = numpy.network_train_step(
                a["X"][r], a["Y"][r], theta, np.zeros_like(theta), work, plan, a["spec"],
                a["coefs"], a["optimizer"], state, a["scalars"][e, j])
            P, Y = layout.views(work, plan, layout.A, len(r))[-1], a["Y"][r]
            correct[e] += np.count_nonzero(
                P.argmax(1) == Y.argmax(1) if P.shape[1] > 1 else (P[:, 0] > .5) == (Y[:, 0] > .5))
    return losses, correct, thetas + [theta], state


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_epoch_call_is_its_batches_stepped_one_by_one(backend, dtype, case):
    a = arguments(case, dtype)
    losses, correct, thetas, state = stepped(a)
    assert backend.network_train_epoch(**a) == -1
    tol = tolerance(dtype)
    np.testing.assert_allclose(a["losses"], losses, **tol)
    np.testing.assert_array_equal(a["correct"], correct)  # as NumPy counts them
    np.testing.assert_allclose(a["theta"], thetas[-1], **tol)
    np.testing.assert_allclose(a["state"], state, **tol)


#: Orders of an epoch's rows: every batch in order (a fit without shuffling: the compiled
#: gathers copy each as one block), batches in order but for the one wrapping round, and
#: in order but for two rows swapped in the last batch.
ORDERS = {"in_order": lambda n: np.arange(n), "rolled": lambda n: np.roll(np.arange(n), 3),
          "swapped": lambda n: np.r_[np.arange(n - 2), n - 1, n - 2]}


@pytest.mark.parametrize("order", sorted(ORDERS))
@pytest.mark.parametrize("case", ["tail", "pair_tail"])
def test_batches_of_consecutive_rows_are_gathered_as_any_others(backend, case, order):
    a = arguments(case, np.float64)
    a["order"] = np.stack([ORDERS[order](len(a["X"]))] * len(a["order"]))
    losses, correct, thetas, state = stepped(a)
    assert backend.network_train_epoch(**a) == -1
    np.testing.assert_allclose(a["losses"], losses, **tolerance(np.float64))
    np.testing.assert_array_equal(a["correct"], correct)
    np.testing.assert_allclose(a["theta"], thetas[-1], **tolerance(np.float64))


def test_the_narrow_pair_epoch_runs_where_the_step_would(compiled_backend):
    # numba's also takes ``layered``: None where every batch takes the pair (test_numba.py)
    layered = {"numba": lambda every_batch: (None if every_batch else True,),
               "cython": lambda every_batch: ()}[compiled_backend.name]
    for case, last_pair in [("pair_tail", False), ("pair", True)]:
        a = arguments(case, np.float64)
        kernel, extra = compiled_backend.epoch_kernel(a["order"], a["Xb"], a["layers"],
                                                      a["spec"])
        assert kernel is compiled_backend.raw.narrow_pair_train_epoch
        assert extra == (True, last_pair, 2, 3) + layered(last_pair)
    a = arguments("tail", np.float64)
    kernel, extra = compiled_backend.epoch_kernel(a["order"], a["Xb"], a["layers"], a["spec"])
    # numba's layered kernels also take ``narrow`` (test_numba.py): [3, 7, 4] in 5s has none
    assert kernel is compiled_backend.raw.layered_train_epoch
    assert extra == {"numba": (None,), "cython": ()}[compiled_backend.name]


def diverging(dtype, overflow):
    """Arguments whose loss becomes non-finite at step 6 of 4 epochs of 5 batches (SGD with
    lr=0.001, but 1e100 at step 5): after the update of step 5 the parameters are large (the
    loss, its square, overflows), or, with lr=inf, not finite; and the parameters
    network_train_epoch must leave."""
    a = arguments("tail", dtype, epochs=4, lr=2.0)
    a["scalars"][..., 0] = 0.001
    a["scalars"][1, 0, 0] = np.inf if overflow else 1e100
    with np.errstate(all="ignore"):
        losses, _, thetas, _ = stepped(a)
    k = np.flatnonzero(~np.isfinite(losses.ravel()))[0]
    assert np.isfinite(thetas[k]).all() != overflow
    return a, k, thetas[k - 1] if overflow else thetas[k]


@pytest.mark.parametrize("overflow", [False, True], ids=["loss_overflows", "update_overflows"])
def test_divergence_stops_at_its_batch_with_the_last_finite_parameters(backend, overflow):
    """The loss of step k is not finite: the call returns k, its update not applied; if the
    update before made theta non-finite, theta is the one before it (a replay of steps
    0..k-2 from the call's checkpoint, here across an epoch)."""
    a, k, expected = diverging(np.float64, overflow)
    assert k == 6 and np.isfinite(expected).all()
    with np.errstate(all="ignore"):
        assert backend.network_train_epoch(**a) == k
    np.testing.assert_allclose(a["theta"], expected, **tolerance(np.float64))
    assert not np.isfinite(a["losses"].ravel()[k])
    assert np.isfinite(a["losses"].ravel()[:k]).all()


def test_an_update_that_overflows_at_a_calls_last_step_is_undone(backend):
    """Two steps of SGD, the second with lr=inf: its update overflows; the call returns 2
    (the next call's first step) with the parameters before it."""
    a = arguments("tail", np.float32, epochs=1, lr=2.0)
    a.update(order=a["order"][:, :10], losses=a["losses"][:, :2], scalars=a["scalars"][:, :2])
    a["scalars"][0, :, 0] = 0.001, np.inf
    a["layers"][1] = a["layers"][0]
    with np.errstate(all="ignore"):
        losses, _, thetas, _ = stepped(a)
        assert np.isfinite(losses).all() and not np.isfinite(thetas[-1]).all()
        assert backend.network_train_epoch(**a) == 2
    np.testing.assert_allclose(a["theta"], thetas[1], **tolerance(np.float32))


def bad(key, value):
    def change(a):
        a[key] = value(a)
    return change


@pytest.mark.parametrize("change, error, message", [
    (bad("order", lambda a: a["order"] + 1), ValueError,
     r"order must hold row indices of X, 0..22, got values 1..23"),
    (bad("order", lambda a: a["order"] - 1), ValueError, r"got values -1..21"),
    (bad("order", lambda a: a["order"].astype(np.int32)), TypeError,
     "order must have dtype int64, got int32"),
    (bad("order", lambda a: a["order"][:, :12]), ValueError,
     r"order has 12 rows an epoch: losses and scalars must have ceil\(12 / 5\) columns"),
    (bad("losses", lambda a: a["losses"][:1]), ValueError, "losses has shape"),
    (bad("scalars", lambda a: a["scalars"][:, :, :3]), ValueError,
     "scalars must hold adam_update's 7 scalars"),
    (bad("uniforms", lambda a: np.zeros((2, 10))), ValueError,
     r"uniforms must be None for this layout"),
    (bad("saved", lambda a: a["saved"][:2]), ValueError, r"saved must have 1 \+ 3 rows"),
    (bad("Xb", lambda a: a["Xb"].astype(np.float32)), TypeError, "Xb must have dtype float64"),
    (bad("optimizer", lambda a: 7), ValueError, "optimizer must be a code"),
], ids=["order_high", "order_negative", "order_dtype", "order_length", "losses_epochs",
        "scalars", "uniforms", "saved", "dtype", "optimizer"])
def test_bad_arguments_are_refused_before_compiled_code(backend, change, error, message):
    a = arguments("tail", np.float64)
    change(a)
    theta = a["theta"].copy()
    with pytest.raises(error, match=message):
        backend.network_train_epoch(**a)
    np.testing.assert_array_equal(a["theta"], theta)  # nothing ran


def test_missing_uniforms_for_a_dropout_layout_are_refused(backend):
    a = arguments("dropout", np.float64)
    with pytest.raises(ValueError, match=r"uniforms must be \(epochs, 209\)"):
        backend.network_train_epoch(**dict(a, uniforms=None))


# ---------------------------------------------------------------- through fit

@pytest.mark.parametrize("callbacks", [None, "epoch", "batch"])
def test_fit_agrees_with_the_reference_stepped_batch_by_batch(backend, dtype, callbacks):
    """fit on each backend (several epochs a call, one, one batch) against make_step per
    batch on NumPy, with the same shuffles and dropout masks; the history's batch losses
    are the steps' losses (to the last bits only: fit's Adam computes its bias corrections
    vectorised, whose pow may differ from math's in the last bit)."""
    hooks = {None: None, "epoch": [Callback()], "batch": [Batches()]}[callbacks]
    X, y = datasets.spiral(n_per_class=13, dtype=dtype)  # 39 rows: batches of 8 and a tail
    make = dict(sizes=[2, 9, 3], dtype=dtype.name, dropout=0.25, seed=3)
    model, reference = MLP(backend=backend.name, **make), MLP(backend="numpy", **make)
    history = model.fit(X, y, optimizer=optim.Adam(lr=0.02), epochs=4, batch_size=8,
                        callbacks=hooks)
    opt, losses = optim.Adam(lr=0.02), []
    for epoch in range(4):
        order = reference._rng.permutation(39)
        for start in range(0, 39, 8):
            rows = order[start:start + 8]
            losses.append(reference.make_step(X[rows], y[rows], opt)())
    tol = tolerance(dtype)
    np.testing.assert_allclose(history.batch_losses, losses, **tol)
    np.testing.assert_allclose(model._theta, reference._theta, **tol)


def test_fits_that_reuse_the_runner_train_as_fits_on_new_ones(backend):
    """Fits with the same optimizer and shapes reuse the model's runner (its buffers,
    tables and kernel); they train as fits on a new runner each do, through a change of
    the optimizer's lr, another batch size and back; and the runner lets the data go."""
    X, y = datasets.spiral(n_per_class=13, dtype="float64")
    make = dict(sizes=[2, 9, 3], dtype="float64", dropout=0.25, seed=3)
    (reused, fresh), runners = [MLP(backend=backend.name, **make) for _ in range(2)], []
    opts = {reused: optim.Adam(lr=0.02), fresh: optim.Adam(lr=0.02)}
    for lr, batch in ((0.02, 8), (0.02, 8), (0.01, 8), (0.01, 13), (0.01, 8)):
        fresh._fit_runner = None
        for model in (reused, fresh):
            opts[model].lr = lr
            history = model.fit(X, y, optimizer=opts[model], epochs=2, batch_size=batch)
            np.testing.assert_allclose(history.batch_losses, reused.history_.batch_losses,
                                       rtol=1e-12)
        runners.append(reused._fit_runner)
    np.testing.assert_allclose(reused._theta, fresh._theta, rtol=1e-12)
    assert runners[0] is runners[1] is runners[2] is not runners[3] is not runners[4]
    data = X.copy()  # float64, C-contiguous: fit trains on it as it is
    gone = weakref.ref(data)
    reused.fit(data, y, optimizer=opts[reused], epochs=1, batch_size=8)
    del data
    assert gone() is None


class Batches(Callback):
    def on_batch_end(self, batch, logs=None):
        self.last = logs["loss"]


def peak_bytes(call):
    """The most bytes ``call`` had allocated at once, and what it left allocated."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        call()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, current - before


def steady_state(backend, dropout, n_per_class):
    """Bytes at most allocated at once by a steady-state epoch call of fit (batches of 30)
    and by a validation pass over twice the rows, and bytes they left allocated."""
    X, y = datasets.spiral(n_per_class=n_per_class, dtype="float32")
    Y = np.eye(3, dtype=np.float32)[y]
    model = MLP([2, 16, 3], backend=backend.name, dropout=dropout)
    runner = EpochRunner(model, X, Y, 30, optim.Adam())
    runner.run(1)
    score = model._scorer(np.concatenate([X, X]), np.concatenate([Y, Y]))
    score()
    return peak_bytes(lambda: runner.run(1)), peak_bytes(score)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_steady_state_epoch_allocates_nothing(compiled_backend, dropout):
    """After the first call, an epoch of 300 rows (10 batches) and one of 3,000 rows (100
    batches), and validation of 1,800 and 18,000 rows (1 and 9 chunks) allocate the same
    few bytes at most (NumPy's shuffle takes a constant 2.8 kB), and leave none."""
    small, large = (steady_state(compiled_backend, dropout, n) for n in (100, 1000))
    for (epoch_peak, epoch_left), (score_peak, score_left) in (small, large):
        assert epoch_peak < 4096 and score_peak < 4096
        assert epoch_left < 256 and score_left < 256
    assert abs(large[0][0] - small[0][0]) < 256  # nothing a batch, nothing of the data
    assert abs(large[1][0] - small[1][0]) < 1024  # a few bytes a chunk


def test_a_fits_allocation_does_not_follow_its_first_calls_time(compiled_backend, monkeypatch):
    # Epochs a call follow the first call's time; the tables they need must not, or every
    # fit allocates differently (the gate's A/A runs flagged fit cases as memory regressions).
    from fastmlp import training

    X, y = datasets.spiral(n_per_class=100, dtype="float32")
    model = MLP([2, 16, 3], backend=compiled_backend.name)
    model.fit(X, y, epochs=2, batch_size=300)
    peaks = {}
    for seconds in (1e-9, 10.0):  # one epoch a call; all 50 in one call
        monkeypatch.setattr(training, "_CALL_SECONDS", seconds)
        peaks[seconds] = peak_bytes(lambda: model.fit(X, y, epochs=50, batch_size=300))[0]
    assert abs(peaks[1e-9] - peaks[10.0]) < 0.1 * peaks[10.0], peaks


def test_a_later_fit_needs_no_call_to_time_its_step(monkeypatch):
    """A model's first fit at a batch size times one epoch alone, then runs the rest in one
    call; a later fit sizes its calls from that time and runs all its epochs in one."""
    from fastmlp import training

    calls = []
    real = training.EpochRunner._call
    monkeypatch.setattr(training.EpochRunner, "_call",
                        lambda self, steps, args: calls.append(steps) or real(self, steps, args))
    X, y = datasets.spiral(n_per_class=20, dtype="float64")  # 60 rows: 6 batches of 10
    model = MLP([2, 8, 3], dtype="float64", seed=1)
    for fit in range(3):
        model.fit(X, y, epochs=4, batch_size=10 if fit < 2 else 20)
    assert calls == [6, 18, 24, 3, 9]  # a new batch size is timed again
