"""Keras-style callbacks for ``MLP.fit``.

``fit(..., callbacks=[...])`` calls, as Keras does: ``set_model(model)`` and
``set_params({"verbose", "epochs", "steps"})`` once, then ``on_train_begin(logs)``,
per epoch ``on_epoch_begin(epoch, logs)`` and ``on_epoch_end(epoch, logs)`` (``epoch``
counts from 0, as in Keras; History's rows count from 1), per batch
``on_batch_begin(batch, logs)`` and ``on_batch_end(batch, logs)``, and ``on_train_end(logs)``.

Batch logs hold ``batch``, ``size`` and ``loss``, that batch's own loss (what Keras 2
gave and the seed's ``LossHistory`` collects; Keras 3 gives the epoch's running mean).
Epoch logs hold ``loss``, ``accuracy`` and, with validation data, ``val_loss`` and
``val_accuracy``, as ``History`` records them. A callback setting
``model.stop_training = True`` ends ``fit`` after the current epoch.

Only a callback that overrides a per-batch hook makes ``fit`` call back into Python
every batch; the others cost nothing per batch.
"""
from __future__ import annotations

import operator
import os
import sys
import tempfile

from tqdm import tqdm

from fastmlp import _atomic

BATCH_HOOKS = ("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")
HOOKS = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end") + BATCH_HOOKS
#: Direction of each name fit logs per epoch: operator.lt if lower is better.
METRICS = {"loss": operator.lt, "accuracy": operator.gt}


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        """Before the first epoch."""

    def on_train_end(self, logs=None):
        """After the last epoch; ``logs`` are the last epoch's."""

    def on_epoch_begin(self, epoch, logs=None):
        """Before epoch ``epoch`` (from 0)."""

    def on_epoch_end(self, epoch, logs=None):
        """After epoch ``epoch`` and its validation; ``logs`` as History's row."""

    def on_batch_begin(self, batch, logs=None):
        """Before batch ``batch`` (from 0 in each epoch)."""

    def on_batch_end(self, batch, logs=None):
        """After batch ``batch``; ``logs["loss"]`` is its loss."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)  # Keras's newer name, kept as an alias

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)


def batch_hook(callback, when):
    """The method ``fit`` calls ``when`` ("begin" or "end") each batch, or None when it
    needs no call: a ``Callback`` that overrides neither ``on_batch_<when>`` nor
    ``on_train_batch_<when>``, or another object with neither."""
    names = (f"on_train_batch_{when}", f"on_batch_{when}")
    if isinstance(callback, Callback):
        overridden = any(getattr(type(callback), n) is not getattr(Callback, n) for n in names)
        return getattr(callback, names[0]) if overridden else None
    return next((getattr(callback, n) for n in names if callable(getattr(callback, n, None))),
                None)


def batch_hooked(callback):
    """Whether ``callback`` needs ``fit`` to call it every batch."""
    return any(batch_hook(callback, when) for when in ("begin", "end"))


def monitored(monitor, logged, owner):
    """The comparison for ``monitor`` (lower or higher is better), checked against the
    names ``logged`` that fit will produce; ``owner`` names the callback in errors."""
    if monitor not in logged:
        hint = " (val_* needs validation_data)" if monitor.startswith("val_") else ""
        raise ValueError(f"{owner}: monitor must be one of {sorted(logged)}, got "
                         f"{monitor!r}{hint}")
    return METRICS.get(monitor.removeprefix("val_"))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs, as Keras's.

    Parameters
    ----------
    monitor : a name in the epoch logs (``val_loss``, ``loss``, ``val_accuracy``, ``accuracy``)
    min_delta : an improvement must beat the best value by more than this
    patience : epochs without improvement before stopping
    restore_best_weights : at the end of training, put back the parameters of the best epoch
    mode : "min", "max", or "auto" (losses lower, accuracies higher)
    baseline : the wait only restarts once ``monitor`` beats this value

    After training, ``stopped_epoch`` is the epoch (from 0) that set ``stop_training``
    (0 if none did) and ``best_epoch`` the best epoch.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, restore_best_weights=False,
                 mode="auto", baseline=None):
        super().__init__()
        self.monitor, self.patience, self.baseline = monitor, patience, baseline
        self.min_delta, self.mode = abs(min_delta), _mode(mode)
        self.restore_best_weights = restore_best_weights
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def check(self, logged):
        """Called by ``fit`` before the first epoch with the names it will log."""
        self._better = _direction(self.mode, monitored(self.monitor, logged, "EarlyStopping"))

    def on_train_begin(self, logs=None):
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def _improves(self, value, reference):
        if reference is None:
            return True
        delta = -self.min_delta if self._better is operator.lt else self.min_delta
        return self._better(value - delta, reference)

    def on_epoch_end(self, epoch, logs=None):
        current = (logs or {}).get(self.monitor)
        if current is None:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model._theta.copy(), epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model._theta.copy()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model._theta[...] = self.best_weights


class ModelCheckpoint(Callback):
    """Save the model through ``MLP.save`` after every epoch, or only when ``monitor``
    improved (``save_best_only``), as Keras's.

    Parameters
    ----------
    path : str or os.PathLike; formatted with ``epoch`` (from 1) and the epoch logs, as
        Keras does, e.g. ``"ckpt/{epoch:03d}-{val_loss:.3f}.npz"``. The file is written
        exactly there (any extension), atomically: to a temporary file in the same
        directory, then renamed, so an interrupted save never leaves a half file.
    monitor, mode : as ``EarlyStopping``; used with ``save_best_only``
    save_best_only : save only when ``monitor`` beats its best value so far
    """

    def __init__(self, path, monitor="val_loss", save_best_only=False, mode="auto"):
        super().__init__()
        self.path, self.monitor = os.fspath(path), monitor
        self.save_best_only, self.mode = save_best_only, _mode(mode)
        self.best = None

    def check(self, logged):
        """Called by ``fit`` before the first epoch: the monitor, the path's fields and
        its directory."""
        self._better = _direction(self.mode, monitored(self.monitor, logged, "ModelCheckpoint"))
        try:
            example = self.path.format(epoch=1, **dict.fromkeys(logged, 0.0))
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"ModelCheckpoint: path {self.path!r} must format with epoch "
                             f"and {sorted(logged)}: {error!r}") from None
        folder = os.path.dirname(os.path.abspath(example))
        if not os.path.isdir(folder):
            problem = "is not a directory" if os.path.exists(folder) else "does not exist"
            raise ValueError(f"ModelCheckpoint: path {self.path!r}: {folder!r} {problem}")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise ValueError(f"ModelCheckpoint: path {self.path!r}: cannot write in "
                             f"{folder!r} ({error.strerror})") from None

    def on_train_begin(self, logs=None):
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None or (self.best is not None and not self._better(current, self.best)):
                return
            self.best = current
        _atomic.write(self.path.format(epoch=epoch + 1, **logs), self.model.save)


def _mode(mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


def _direction(mode, auto):
    if mode == "min":
        return operator.lt
    if mode == "max":
        return operator.gt
    return auto


class ProgressBar(Callback):
    """``verbose=1``: a bar per epoch (tqdm) with the running mean of the batch losses,
    then the epoch's logs, as Keras shows. A per-batch callback."""

    def on_epoch_begin(self, epoch, logs=None):
        self._bar = tqdm(total=self.params["steps"], file=sys.stdout, unit="batch",
                         desc=f"Epoch {epoch + 1}/{self.params['epochs']}", leave=True)
        self._total = self._count = 0

    def on_batch_end(self, batch, logs=None):
        self._total, self._count = self._total + logs["loss"], self._count + 1
        self._bar.set_postfix_str(f"loss: {self._total / self._count:.4f}", refresh=False)
        self._bar.update(1)  # redraws at most every 0.1 s

    def on_epoch_end(self, epoch, logs=None):
        self._bar.set_postfix_str(_metrics(logs), refresh=False)
        self._bar.close()


class EpochLines(Callback):
    """``verbose=2``: one line per epoch, ``Epoch 3/10 - 0.02s - loss: 0.4512 - ...``."""

    def on_epoch_end(self, epoch, logs=None):
        seconds = self.model.history_.rows[-1]["seconds"]
        print(f"Epoch {epoch + 1}/{self.params['epochs']} - {seconds:.2f}s - {_metrics(logs)}",
              flush=True)


def _metrics(logs):
    return " - ".join(f"{name}: {value:.4f}" for name, value in logs.items())
