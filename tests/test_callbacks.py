"""Callbacks and verbose output of ``MLP.fit``: Keras's call order and semantics."""
import os

import numpy as np
import pytest

import fastmlp.callbacks as cb
from fastmlp import MLP, DivergenceError, datasets, optim
from fastmlp.callbacks import Callback, EarlyStopping, ModelCheckpoint


# The seed's callback, as written there (only the import differs: keras.callbacks -> fastmlp).
class LossHistory(cb.Callback):
    def on_train_begin(self, logs={}):
        self.losses = []

    def on_batch_end(self, batch, logs={}):
        batch_loss = logs.get('loss')
        self.losses.append(batch_loss)


class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", dict(logs)))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch, logs["size"]))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, logs["loss"]))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end", dict(logs)))


def spiral(n_per_class=20):
    return datasets.spiral(n_per_class=n_per_class)


def test_seeds_loss_history_collects_every_batch_loss():
    X, y = spiral()
    history = LossHistory()
    model = MLP([2, 8, 3], seed=0)
    fitted = model.fit(X, y, optimizer="adam", epochs=3, batch_size=16, callbacks=[history],
                       validation_data=(X, y), verbose=0)
    assert len(history.losses) == 3 * 4
    assert history.losses == fitted.batch_losses


def test_hooks_run_in_keras_order_with_model_params_and_logs():
    X, y = spiral()
    recorder, model = Recorder(), MLP([2, 8, 3], seed=0)
    history = model.fit(X, y, epochs=2, batch_size=25, validation_data=(X, y),
                        callbacks=[recorder])
    assert recorder.model is model
    assert recorder.params == {"verbose": 0, "epochs": 2, "steps": 3}
    names = [c[0] for c in recorder.calls]
    epoch = ["epoch_begin"] + ["batch_begin", "batch_end"] * 3 + ["epoch_end"]
    assert names == ["train_begin"] + epoch * 2 + ["train_end"]
    assert [c[2] for c in recorder.calls if c[0] == "batch_begin"] == [25, 25, 10] * 2
    assert [c[2] for c in recorder.calls if c[0] == "batch_end"] == history.batch_losses
    ends = [c for c in recorder.calls if c[0] == "epoch_end"]
    assert [c[1] for c in ends] == [0, 1]  # Keras counts epochs from 0
    for (_, _, logs), row in zip(ends, history.rows):
        assert logs == {k: row[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    assert recorder.calls[-1][1] == ends[-1][2]


def test_epoch_logs_without_validation_have_loss_and_accuracy_only():
    X, y = spiral()
    recorder = Recorder()
    MLP([2, 8, 3]).fit(X, y, epochs=1, callbacks=[recorder])
    assert set(recorder.calls[-2][2]) == {"loss", "accuracy"}


def test_per_batch_hooks_are_detected_by_overriding():
    class EpochOnly(Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    class KerasName(Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    class Duck:
        def on_batch_end(self, batch, logs):
            pass

    assert not cb.batch_hooked(Callback()) and not cb.batch_hooked(EpochOnly())
    assert cb.batch_hooked(LossHistory()) and cb.batch_hooked(KerasName())
    assert cb.batch_hooked(Duck()) and not cb.batch_hooked(EarlyStopping())


def test_a_duck_typed_callback_gets_the_hooks_it_has():
    class Duck:
        seen = []

        def on_batch_end(self, batch, logs):
            self.seen.append(logs["loss"])

    X, y = spiral()
    history = MLP([2, 8, 3]).fit(X, y, epochs=2, batch_size=30, callbacks=[Duck()])
    assert Duck.seen == history.batch_losses


def test_stop_training_ends_fit_after_the_epoch():
    class StopAtBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    X, y = spiral()
    history = MLP([2, 8, 3]).fit(X, y, epochs=5, batch_size=20, callbacks=[StopAtBatch()])
    assert len(history) == 1 and len(history.batch_losses) == 3  # the epoch finished


def make_plateau(values):
    """A callback feeding fixed val_loss values to the callbacks after it, then the model's
    parameters set to the epoch number (to see which epoch's weights come back)."""
    class Plateau(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = values[epoch]
            self.model._theta[...] = epoch

    return Plateau()


@pytest.mark.parametrize("values, patience, min_delta, stops_at", [
    ([5, 4, 4, 4, 4, 4], 0, 0, 2),          # no improvement at epoch 2: stop at once
    ([5, 4, 4, 4, 4, 4], 2, 0, 3),          # waits 2 epochs
    ([5, 4, 3.5, 3.2, 3.1, 3], 1, 0.4, 3),  # 3.5 beats 4 by > 0.4; 3.2 does not beat 3.5 by 0.4
    ([5, 4, 3, 2, 1, 0], 0, 0, None),       # keeps improving: runs all 6 epochs
], ids=["patience0", "patience2", "min_delta", "improving"])
def test_early_stopping_follows_keras(values, patience, min_delta, stops_at):
    X, y = spiral()
    stopper = EarlyStopping(patience=patience, min_delta=min_delta)
    history = MLP([2, 4, 3]).fit(X, y, epochs=6, validation_data=(X, y),
                                 callbacks=[make_plateau(values), stopper])
    assert len(history) == (stops_at + 1 if stops_at is not None else 6)
    assert stopper.stopped_epoch == (stops_at or 0)


def test_early_stopping_restores_the_best_weights():
    X, y = spiral()
    model = MLP([2, 4, 3])
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    model.fit(X, y, epochs=10, validation_data=(X, y),
              callbacks=[make_plateau([5, 3, 4, 4, 4, 4, 4, 4, 4, 4]), stopper])
    assert stopper.best_epoch == 1 and stopper.stopped_epoch == 3
    assert (model._theta == 1).all()  # the parameters left by epoch 1


def test_early_stopping_on_accuracy_maximises_and_baseline_holds_the_wait():
    X, y = spiral()

    class Accuracy(Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["accuracy"] = [0.5, 0.6, 0.55, 0.55][epoch]

    stopper = EarlyStopping(monitor="accuracy")
    assert len(MLP([2, 4, 3]).fit(X, y, epochs=4, callbacks=[Accuracy(), stopper])) == 3
    # Improving but never beating the baseline: the wait is never reset.
    for baseline, epochs in ((None, 6), (0.0, 4)):
        stopper = EarlyStopping(patience=3, baseline=baseline)
        history = MLP([2, 4, 3]).fit(X, y, epochs=8, validation_data=(X, y),
                                     callbacks=[make_plateau([5, 4] + [3] * 6), stopper])
        assert len(history) == epochs


def test_model_checkpoint_writes_each_epoch_and_loads_back(tmp_path):
    X, y = spiral()
    model = MLP([2, 8, 3], seed=1)
    model.fit(X, y, epochs=3, validation_data=(X, y),
              callbacks=[ModelCheckpoint(tmp_path / "m-{epoch:02d}-{val_loss:.3f}.npz")])
    files = sorted(os.listdir(tmp_path))
    assert [f[:4] for f in files] == ["m-01", "m-02", "m-03"]
    assert f"{model.history_.rows[2]['val_loss']:.3f}" in files[2]
    loaded = MLP.load(tmp_path / files[2])
    np.testing.assert_array_equal(loaded.forward(X), model.forward(X))


def test_model_checkpoint_save_best_only_keeps_the_best_epoch(tmp_path):
    X, y = spiral()
    model = MLP([2, 4, 3])
    checkpoint = ModelCheckpoint(tmp_path / "best", save_best_only=True)
    model.fit(X, y, epochs=4, validation_data=(X, y),
              callbacks=[make_plateau([5, 3, 4, 2.5]), checkpoint])
    assert os.listdir(tmp_path) == ["best"]  # written exactly there, no temporary left
    assert (MLP.load(tmp_path / "best")._theta == 3).all() and checkpoint.best == 2.5
    model.fit(X, y, epochs=2, validation_data=(X, y),
              callbacks=[make_plateau([9, 8]), checkpoint])
    assert (MLP.load(tmp_path / "best")._theta == 1).all()  # best is reset per fit


def test_an_interrupted_checkpoint_leaves_no_file(tmp_path, monkeypatch):
    X, y = spiral()
    model = MLP([2, 4, 3])
    monkeypatch.setattr(MLP, "save", lambda self, file: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        model.fit(X, y, callbacks=[ModelCheckpoint(tmp_path / "m.npz", monitor="loss")])
    assert os.listdir(tmp_path) == []


def test_verbose_1_shows_a_bar_per_epoch_with_the_loss(capsys):
    X, y = spiral()
    history = MLP([2, 8, 3]).fit(X, y, epochs=2, batch_size=20, verbose=1)
    out = capsys.readouterr().out
    for epoch, row in enumerate(history.rows, 1):
        assert f"Epoch {epoch}/2" in out
        assert f"loss: {row['loss']:.4f} - accuracy: {row['accuracy']:.4f}" in out
    assert "3/3" in out


def test_verbose_2_prints_one_line_per_epoch_and_0_nothing(capsys):
    X, y = spiral()
    history = MLP([2, 8, 3]).fit(X, y, epochs=3, validation_data=(X, y), verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for epoch, (line, row) in enumerate(zip(lines, history.rows), 1):
        assert line.startswith(f"Epoch {epoch}/3 - ")
        assert line.endswith(f"loss: {row['loss']:.4f} - accuracy: {row['accuracy']:.4f} - "
                             f"val_loss: {row['val_loss']:.4f} - "
                             f"val_accuracy: {row['val_accuracy']:.4f}")
    MLP([2, 8, 3]).fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_divergence_stays_an_error_with_callbacks():
    X, y = spiral()
    history = LossHistory()
    model = MLP([2, 32, 3], activation="identity", output="identity", loss="mse", seed=0)
    with pytest.raises(DivergenceError):
        model.fit(X, np.eye(3)[y], optimizer=optim.SGD(lr=1.5), epochs=200, batch_size=20,
                  callbacks=[history])
    assert history.losses == model.history_.batch_losses and np.isfinite(history.losses).all()


# ---------------------------------------------------------------- bad input, before epoch 1

class Fails(Callback):
    """Proves a check came first: fit never reaches training."""

    def on_train_begin(self, logs=None):
        raise AssertionError("training started")


@pytest.mark.parametrize("make, error, message", [
    (lambda p: [EarlyStopping()], ValueError,
     r"EarlyStopping: monitor must be one of \['accuracy', 'loss'\], got 'val_loss' "
     r"\(val_\* needs validation_data\)"),
    (lambda p: [EarlyStopping(monitor="val_acc")], ValueError, "got 'val_acc'"),
    (lambda p: [ModelCheckpoint(p / "m.npz")], ValueError, "ModelCheckpoint: monitor must"),
    (lambda p: [ModelCheckpoint(p / "nowhere" / "m.npz", monitor="loss")], ValueError,
     "ModelCheckpoint: path .*nowhere.* does not exist"),
    (lambda p: [ModelCheckpoint(p / "file.txt" / "m.npz", monitor="loss")], ValueError,
     "ModelCheckpoint: path .*file.txt' is not a directory"),
    (lambda p: [ModelCheckpoint(p / "{val_loss}.npz", monitor="loss")], ValueError,
     r"ModelCheckpoint: path .* must format with epoch and \['accuracy', 'loss'\]"),
    (lambda p: [object()], TypeError, r"callbacks\[0\] must be a fastmlp.callbacks.Callback "
     "or have on_\\* methods .* got object"),
    (lambda p: [Callback(), 3], TypeError, r"callbacks\[1\] must be .* got int 3"),
    (lambda p: EarlyStopping(monitor="loss"), TypeError,
     "callbacks must be a list of callbacks, got EarlyStopping"),
    (lambda p: [EarlyStopping(monitor="loss", mode="up")], ValueError,
     "mode must be 'auto', 'min' or 'max', got 'up'"),
], ids=["no_validation", "unknown", "checkpoint_monitor", "no_dir", "dir_is_a_file",
        "format_field", "object", "int", "not_a_list", "mode"])
def test_bad_callbacks_are_refused_before_the_first_epoch(tmp_path, make, error, message):
    (tmp_path / "file.txt").write_text("")
    X, y = spiral(5)
    model, opt = MLP([2, 4, 3]), optim.Adam()
    with pytest.raises(error, match=message):
        model.fit(X, y, optimizer=opt, callbacks=make(tmp_path) + [Fails()]
                  if isinstance(make(tmp_path), list) else make(tmp_path))
    assert model.history_ is None and opt._state == {}  # nothing started


def test_bad_verbose_is_refused():
    X, y = spiral(5)
    with pytest.raises(ValueError, match=r"verbose must be in \[0, 2\], got 3"):
        MLP([2, 4, 3]).fit(X, y, verbose=3)


# ---------------------------------------------------------------- the loop itself

@pytest.mark.parametrize("mode", ["epochs_a_call", "epoch_a_call", "batch_a_call"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_is_make_step_over_the_shuffled_batches(monkeypatch, mode, shuffle):
    """Several epochs a call, one, or one batch (a per-batch hook) give exactly the losses
    and accuracy of one step per batch, and draw the same orders and dropout masks."""
    from fastmlp import training
    monkeypatch.setattr(training, "_CALL_SECONDS", 10.0)  # every epoch after the first at once
    callbacks = {"epochs_a_call": None, "epoch_a_call": [Callback()],
                 "batch_a_call": [LossHistory()]}[mode]
    X, y = spiral(17)  # 51 rows: batches of 10 leave a tail of 1
    model, reference = (MLP([2, 8, 3], dtype="float64", dropout=0.3, seed=4) for _ in range(2))
    history = model.fit(X, y, optimizer=optim.SGD(lr=0.1, momentum=0.9), epochs=3,
                        batch_size=10, shuffle=shuffle, callbacks=callbacks)
    opt, losses = optim.SGD(lr=0.1, momentum=0.9), []
    for epoch in range(3):
        order = reference._rng.permutation(51) if shuffle else np.arange(51)
        correct = 0
        for start in range(0, 51, 10):
            rows = order[start:start + 10]
            losses.append(reference.make_step(X[rows], y[rows], opt)())
            P = reference._workspace(len(rows), True).outputs
            correct += np.count_nonzero(P.argmax(axis=1) == y[rows])
        assert history.rows[epoch]["accuracy"] == correct / 51
    assert history.batch_losses == losses
    np.testing.assert_array_equal(model._theta, reference._theta)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_batch_gd_draws_no_order(dropout):
    """With one batch an epoch, shuffle draws nothing: the fit is the unshuffled one, and
    the model's stream gives only dropout's uniforms."""
    X, y = spiral(17)
    fits = []
    for shuffle in (True, False):
        model = MLP([2, 8, 3], dtype="float64", dropout=dropout, seed=4)
        history = model.fit(X, y, optimizer="adam", epochs=3, batch_size=51, shuffle=shuffle)
        fits.append((history.batch_losses, model._theta.copy(), model._rng.random()))
    assert fits[0][0] == fits[1][0] and fits[0][2] == fits[1][2]
    np.testing.assert_array_equal(fits[0][1], fits[1][1])
    untouched = MLP([2, 8, 3], dtype="float64", dropout=dropout, seed=4)._rng
    if dropout == 0:
        assert fits[0][2] == untouched.random()


def test_hooks_and_validation_see_the_callers_error_settings():
    seen = []

    class Probe(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(np.geterr()["over"])

        def on_epoch_end(self, epoch, logs=None):
            seen.append(np.geterr()["invalid"])

    X, y = spiral(5)
    with np.errstate(over="raise", invalid="warn"):
        MLP([2, 4, 3]).fit(X, y, epochs=1, batch_size=5, callbacks=[Probe()])
        assert np.geterr()["over"] == "raise"
    assert seen == ["raise"] * 3 + ["warn"]


@pytest.mark.parametrize("scale, lr, batch_size, last_finite", [
    (1, 1.5, 20, True),       # the loss overflows from finite parameters
    (1e3, 1e37, 20, False),   # the update overflowed first: go back one step more
    (1e3, 1e37, 60, False)],  # ... to the previous epoch's last step
    ids=["finite", "one_more", "across_epochs"])
def test_divergence_restores_the_parameters_of_the_last_finite_loss(scale, lr, batch_size,
                                                                   last_finite):
    """The step's loss comes from the parameters before its update: a NaN loss at step k
    restores those (theta_k) if finite, else theta_{k-1}, which gave a finite loss."""
    thetas = []

    class Before(Callback):
        def on_batch_begin(self, batch, logs=None):
            thetas.append(self.model._theta.copy())

    X, y = spiral()
    model = MLP([2, 32, 3], activation="identity", output="identity", loss="mse", seed=0)
    with pytest.raises(DivergenceError):
        model.fit(X * scale, np.eye(3)[y], optimizer=optim.SGD(lr=lr), epochs=200,
                  batch_size=batch_size, callbacks=[Before()])
    assert np.isfinite(thetas[-1]).all() == last_finite
    np.testing.assert_array_equal(model._theta, thetas[-1] if last_finite else thetas[-2])
    assert np.isfinite(model._theta).all()


def test_only_the_overridden_per_batch_hook_is_called():
    class EndOnly(Callback):
        def on_batch_end(self, batch, logs=None):
            pass

    assert cb.batch_hook(EndOnly(), "begin") is None
    assert cb.batch_hook(EndOnly(), "end") is not None
    assert cb.batch_hook(LossHistory(), "begin") is None


def test_the_progress_bar_shows_the_running_mean_loss(monkeypatch):
    import tqdm
    shown = []
    monkeypatch.setattr(tqdm.tqdm, "set_postfix_str",
                        lambda self, s="", refresh=True: shown.append(s))
    X, y = spiral()
    history = MLP([2, 8, 3]).fit(X, y, epochs=1, batch_size=20, verbose=1)
    running = np.cumsum(history.batch_losses) / np.arange(1, 4)
    assert shown[:3] == [f"loss: {value:.4f}" for value in running]


def test_one_output_accuracy_thresholds_the_outputs_the_steps_saw():
    X, y = spiral(17)
    labels = (y == 1).astype(float)
    model, reference = (MLP([2, 8, 1], output="sigmoid", dtype="float64", seed=2)
                        for _ in range(2))
    history = model.fit(X, labels, optimizer="adam", epochs=2, batch_size=10)
    opt = optim.get("adam")
    for epoch in range(2):
        order, correct = reference._rng.permutation(51), 0
        for start in range(0, 51, 10):
            rows = order[start:start + 10]
            reference.make_step(X[rows], labels[rows], opt)()
            P = reference._workspace(len(rows), True).outputs[:, 0]
            correct += np.count_nonzero((P > 0.5) == (labels[rows] > 0.5))
        assert history.rows[epoch]["accuracy"] == correct / 51
