"""The epoch loop of ``MLP.fit``: mini-batches, the divergence guard, callbacks.

Per batch, the loop runs the prepared step, checks its loss and records it; the
gather of batches and the accuracy count run once per chunk of batches, and
callbacks run per batch only when one of them has a per-batch hook.
"""
from __future__ import annotations

import math
import time
from functools import partial

import numpy as np

from fastmlp import callbacks as cb
from fastmlp.history import History

_CHUNK_BYTES = 1 << 20  # rows gathered at once: a chunk of batches stays in cache
_CHUNK_BATCHES = 64  # at most this many steps (each bound to its rows) per chunk


class DivergenceError(ArithmeticError):
    """The training loss became NaN or infinite; ``history`` holds what was recorded."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


def train(model, X, Y, opt, epochs, batch_size, validation, shuffle, verbose, callbacks):
    """``MLP.fit``'s loop on checked arguments; see there."""
    logged = ["loss", "accuracy"] + (["val_loss", "val_accuracy"] if validation else [])
    hooks = _Hooks(callbacks, verbose, model, logged,
                   dict(verbose=verbose, epochs=epochs, steps=-(-len(X) // batch_size)))
    batches = _Batches(model, X, Y, batch_size, opt, model._rng if shuffle else None)
    model.history_ = history = History()
    model.stop_training = False
    hooks.call("on_train_begin", {})
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked per batch
        logs = _epochs(model, batches, opt, epochs, validation, hooks, history)
    hooks.call("on_train_end", dict(logs))
    return history


def _epochs(model, batches, opt, epochs, validation, hooks, history):
    """The epochs of ``train``; returns the last epoch's logs."""
    losses, logs, theta, t = history.batch_losses, {}, model._theta, 0
    append, isfinite, begin, end = losses.append, math.isfinite, hooks.begin, hooks.end
    saved = (theta.copy(), theta.copy())  # the parameters before the last two steps
    for epoch in range(epochs):
        hooks.call("on_epoch_begin", epoch, {})
        started, first = time.perf_counter(), len(losses)
        for index, (step, rows) in enumerate(batches()):
            if begin:
                hooks.batch(begin, index, dict(batch=index, size=rows))
            t ^= 1
            saved[t][...] = theta  # not np.copyto: a third of its cost on small arrays
            loss = step()
            if not isfinite(loss):
                # If the parameters the loss came from are already non-finite, the step
                # before produced them: go back one more.
                theta[...] = saved[t] if np.isfinite(saved[t]).all() else saved[t ^ 1]
                raise DivergenceError(
                    f"loss became {loss} at epoch {epoch + 1}, batch {index + 1}; the "
                    "parameters were restored to their last finite values. Try a smaller "
                    f"learning rate than lr={opt.lr}.", history)
            append(loss)
            if end:
                hooks.batch(end, index, dict(batch=index, size=rows, loss=loss))
        batch_losses = losses[first:]
        logs = dict(loss=math.fsum(batch_losses) / len(batch_losses),
                    accuracy=batches.correct / len(batches.X))
        if validation:
            with hooks.outside():
                scores = model._score(*validation)
            logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
        history.append(epoch=epoch + 1, seconds=time.perf_counter() - started, **logs)
        hooks.call("on_epoch_end", epoch, dict(logs))
        if model.stop_training:
            break
    return logs


class _Hooks:
    """The callbacks of one fit, checked before the first epoch, and their dispatch."""

    def __init__(self, callbacks, verbose, model, logged, params):
        callbacks = _checked(callbacks)
        callbacks += [cb.ProgressBar()] if verbose == 1 else [cb.EpochLines()] if verbose else []
        for callback in callbacks:
            for method, argument in (("set_model", model), ("set_params", params),
                                     ("check", logged)):
                if hasattr(callback, method):
                    getattr(callback, method)(argument)
        self.callbacks = callbacks
        # Per-batch hooks, only of the callbacks that need them: the rest cost nothing a batch.
        self.begin, self.end = ([h for h in (cb.batch_hook(c, when) for c in callbacks) if h]
                                for when in ("begin", "end"))
        # Hooks and validation see the caller's floating-point error settings, not the loop's.
        self.outside = partial(np.errstate, **np.geterr())

    def call(self, name, *args):
        if self.callbacks:
            with self.outside():
                for callback in self.callbacks:
                    if hasattr(callback, name):
                        getattr(callback, name)(*args)

    def batch(self, methods, index, logs):
        with self.outside():
            for method in methods:
                method(index, logs)


def _checked(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, (cb.Callback, str)) or not hasattr(callbacks, "__iter__"):
        raise TypeError(f"callbacks must be a list of callbacks, got {type(callbacks).__name__}")
    callbacks = list(callbacks)
    for i, callback in enumerate(callbacks):
        if not (isinstance(callback, cb.Callback)
                or any(callable(getattr(callback, name, None)) for name in cb.HOOKS)):
            raise TypeError(f"callbacks[{i}] must be a fastmlp.callbacks.Callback or have "
                            f"on_* methods ({', '.join(cb.HOOKS)}), got "
                            f"{type(callback).__name__} {callback!r}")
    return callbacks


class _Batches:
    """An epoch's mini-batches as ``(step, rows)``: a training step bound to each batch's
    rows in a buffer of one chunk of batches, gathered (shuffled or in order) once per chunk.

    After an epoch, ``correct`` counts the rows its steps classified right (the outputs
    each step computed, before its update)."""

    def __init__(self, model, X, Y, batch_size, opt, rng):
        n, row_bytes = len(X), (X.shape[1] + Y.shape[1]) * X.itemsize
        fit = max(1, min(_CHUNK_BATCHES, _CHUNK_BYTES // (batch_size * row_bytes)))
        self.X, self.Y, self.rng, self.chunk = X, Y, rng, min(n, fit * batch_size)
        self.correct = 0
        self.labels = _labels(Y)
        self.Xc, self.Yc = np.empty((self.chunk,) + X.shape[1:], X.dtype), np.empty(
            (self.chunk,) + Y.shape[1:], Y.dtype)
        self.Lc, self.Pc = np.empty(self.chunk, self.labels.dtype), np.empty(self.chunk,
                                                                           self.labels.dtype)
        self.layouts = {}  # rows of a chunk -> its buffers' views and [(step, rows, predict)]
        for m in {self.chunk, n % self.chunk} - {0}:
            steps = [self._entry(model, opt, start, min(start + batch_size, m))
                     for start in range(0, m, batch_size)]
            self.layouts[m] = (self.Xc[:m], self.Yc[:m], self.Lc[:m], self.Pc[:m], steps)

    def _entry(self, model, opt, start, stop):
        rows = stop - start
        ws = model._workspace(rows, True)
        step = model._stepper(self.Xc[start:stop], self.Yc[start:stop], ws, opt, model._rng)
        P, out = ws.outputs, self.Pc[start:stop]
        # _labels of this batch's outputs: bound once (np.argmax's wrapper costs 5x the method)
        predict = (partial(P.argmax, 1, out) if P.shape[1] > 1
                   else partial(np.greater, P[:, 0], 0.5, out))
        return step, rows, predict

    def __call__(self):
        X, Y, labels, n, chunk = self.X, self.Y, self.labels, len(self.X), self.chunk
        order = self.rng.permutation(n) if self.rng is not None else None
        self.correct = 0
        for c0 in range(0, n, chunk):
            m = min(chunk, n - c0)
            Xc, Yc, Lc, Pc, steps = self.layouts[m]
            if order is None:
                Xc[...], Yc[...], Lc[...] = X[c0:c0 + m], Y[c0:c0 + m], labels[c0:c0 + m]
            else:
                rows = order[c0:c0 + m]
                X.take(rows, 0, Xc), Y.take(rows, 0, Yc), labels.take(rows, 0, Lc)
            for step, size, predict in steps:
                yield step, size
                predict()
            self.correct += int(np.count_nonzero(Pc == Lc))

def _labels(Y):
    """Class of each row: argmax for several outputs, above 0.5 for one."""
    return Y.argmax(axis=1) if Y.shape[1] > 1 else Y[:, 0] > 0.5

