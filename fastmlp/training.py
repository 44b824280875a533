"""The epoch loop of ``MLP.fit``: epochs in compiled calls, the divergence guard, callbacks.

Each call of the backend's ``network_train_epoch`` runs whole epochs: the gather of every
batch, its step, its loss, the epoch's correct count and the divergence check. Without
callbacks and validation a call runs several epochs (up to ``_CALL_SECONDS`` of them);
otherwise one epoch, so that validation and the epoch hooks run between them; and when a
callback has a per-batch hook, one batch, so that the hooks run between batches.
"""
from __future__ import annotations

import time
from functools import partial

import numpy as np

from fastmlp import callbacks as cb
from fastmlp.backends import compose
from fastmlp.backends.layout import FAN_OUT, U, plan
from fastmlp.history import History

_CALL_SECONDS = 0.05  # a call of several epochs lasts about this: an interrupt waits for it
_CALL_BYTES = 1 << 23  # and its per-epoch tables (orders, dropout uniforms) take at most this


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
    together = 1 if hooks.callbacks or validation else epochs  # epochs a call may run
    runner = _runner(model, X, Y, batch_size, opt, shuffle, epochs, together)
    model.history_ = history = History()
    model.stop_training = False
    try:
        hooks.call("on_train_begin", {})
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked per batch
            logs = _epochs(model, runner, epochs, validation, hooks, history)
        hooks.call("on_train_end", dict(logs))
    finally:
        runner.bind(None, None)  # the model keeps its runner, not the caller's data
    return history


def _runner(model, X, Y, batch_size, opt, shuffle, epochs, together):
    """The model's runner of its last fit, bound to ``X`` and ``Y``, if it was built for
    the same shapes, optimizer and settings; else a new one, kept for the next fit. (A
    runner's set-up, ~70 us, was most of a one-epoch fit of the spiral: 150 us for a 22 us
    step.)"""
    runner = model._fit_runner
    if runner is None or not runner.fits(X, Y, batch_size, opt, shuffle, epochs, together):
        runner = EpochRunner(model, X, Y, batch_size, opt, shuffle, epochs, together)
        model._fit_runner = runner
    runner.bind(X, Y)
    return runner


def _epochs(model, runner, epochs, validation, hooks, history):
    """The epochs of ``train``; returns the last epoch's logs."""
    score = model._scorer(*validation) if validation else None
    batched, epoch, logs = bool(hooks.begin or hooks.end), 0, {}
    while epoch < epochs:
        count = runner.epochs_a_call(epochs - epoch)
        hooks.call("on_epoch_begin", epoch, {})
        started = time.perf_counter()
        diverged = _batches(runner, hooks) if batched else runner.run(count)
        seconds = (time.perf_counter() - started) / count
        if diverged >= 0:  # the epochs before the diverged step's are finished
            undone = diverged == count * runner.batches
            count, batch = divmod(diverged - undone, runner.batches)
        history.batch_losses.extend(runner.losses[:count].ravel().tolist())
        if score is None and not hooks.callbacks:  # no one reads the rows before the end
            history.extend(epoch + 1, (runner.losses[:count].sum(1) / runner.batches).tolist(),
                           (runner.correct[:count] / runner.n).tolist(), seconds)
        elif count:  # one epoch: validation and the callbacks see its row
            logs = dict(loss=float(runner.losses[0].sum()) / runner.batches,
                        accuracy=int(runner.correct[0]) / runner.n)
            if score is not None:
                with hooks.outside():
                    scores = score()
                logs.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
            history.append(epoch=epoch + 1, seconds=seconds, **logs)
        if diverged >= 0:
            _diverged(runner, epoch + count, count, batch, undone, history)
        hooks.call("on_epoch_end", epoch, dict(logs))  # callbacks: one epoch a call
        epoch += count
        if model.stop_training:
            break
    return logs


def _batches(runner, hooks):
    """One epoch, a call a batch, the hooks around each batch; as ``runner.run``."""
    runner.draw_epoch()
    for index in range(runner.batches):
        if hooks.begin:
            hooks.batch(hooks.begin, index, dict(batch=index, size=runner.size(index)))
        if runner.run_batch(index) >= 0:
            return index
        if hooks.end:
            hooks.batch(hooks.end, index, dict(batch=index, size=runner.size(index),
                                               loss=float(runner.losses[0, index])))
    return -1


def _diverged(runner, epoch, e, batch, undone, history):
    """Record the batches of epoch ``e`` of the call before ``batch``, and raise; ``undone``:
    ``batch`` ran, but its update made the parameters non-finite and was undone."""
    history.batch_losses.extend(runner.losses[e, :batch + undone].tolist())
    where = f"at epoch {epoch + 1}, batch {batch + 1}"
    what = (f"the update {where} made the parameters non-finite" if undone else
            f"loss became {runner.losses[e, batch]} {where}")
    raise DivergenceError(f"{what}; the parameters were restored to their last finite values. "
                          f"Try a smaller learning rate than lr={runner.opt.lr}.", history)


class EpochRunner:
    """What ``network_train_epoch`` takes for one fit, built once: the batch buffers, the
    layouts of a full and of the last batch, the checkpoint, and the tables of a call
    (orders, scalars, dropout uniforms, losses, correct counts) for up to ``capacity``
    epochs. After ``run(count)``, ``losses[e]`` and ``correct[e]`` are its epoch e's.
    ``epochs``, when known, is the fit's: its optimizer scalars are computed for that many
    steps at once; ``together``, the most epochs one of its calls may run. ``fastmlp.sklearn``
    runs its epochs through one too, in its own row orders."""

    def __init__(self, model, X, Y, batch_size, opt, shuffle=True, epochs=None, together=None):
        self.model, self.X, self.Y, self.opt = model, X, Y, opt
        self.n, self.b, self.batches = len(X), batch_size, -(-len(X) // batch_size)
        self._built_for = (X.shape, Y.shape, batch_size, shuffle, epochs, together)
        # One batch an epoch (batch GD) sums over all rows: no order changes it but in rounding.
        self.rng = model._rng if shuffle and self.batches > 1 else None
        ws, raw = model._workspace(batch_size, True), model.backend.raw
        last = plan(model.sizes, self.n % batch_size or batch_size, model.dropout, True).layers
        self.layers = np.stack([ws.layers, last])
        self.units = int(sum(r[FAN_OUT] for r in ws.layers[:-1] if r[U] >= 0))
        self.table = opt.scalar_table("theta", model._theta,
                                      epochs and epochs * self.batches)  # None: unknown
        code, state = ((self.table.code, self.table.state) if self.table is not None else
                       (0, opt._state_of("theta", model._theta)[0]))
        self.Xb = np.empty((batch_size, X.shape[1]), model.dtype)
        self.Yb = np.empty((batch_size, Y.shape[1]), model.dtype)
        self.state = state
        self.saved = np.empty((1 + state.shape[0], model._theta.size), model.dtype)
        self._fixed = (X, Y, ws.work, self.layers, model._spec, model._coefs, code, state)
        self._rows = np.arange(self.n)
        self.per_call, self.together = 0, together  # epochs a call: timed; at most
        # Tables for the most epochs a call may run, as far as _CALL_BYTES holds them, here:
        # whatever the first call's time says, a fit allocates the same each time.
        self._grow(min(together, self._most_epochs()) if together else 1)
        if self.table is None:  # an optimizer with its own _update: steps composed in Python
            self._kernel, self._literals = compose.make_train_epoch(
                raw, lambda *_: opt.apply(raw, "theta", model._theta, model._grad)), ()
        else:
            self._kernel, self._literals = model.backend.epoch_kernel(
                self.order, self.Xb, self.layers, model._spec)
            args = self._args(1)  # the narrow pair's kin and kout are literals
            self._kernel = model.backend.specialise(self._kernel, args[:20], args[20:])

    def fits(self, X, Y, batch_size, opt, shuffle, epochs, together):
        """Whether this runner can run a fit of these arguments (then ``bind`` it to them):
        the same shapes and settings, and the optimizer and its state it was built with."""
        return (opt is self.opt and self._built_for == (X.shape, Y.shape, batch_size, shuffle,
                                                       epochs, together)
                and opt._state_of("theta", self.model._theta)[0] is self.state)

    def bind(self, X, Y):
        """Train on ``X`` and ``Y`` (the shapes it was built for) from now on; None lets the
        last ones go."""
        self.X, self.Y = X, Y
        self._fixed = (X, Y) + self._fixed[2:]
        self._calls = {}

    def _grow(self, capacity):
        """Tables for ``capacity`` epochs a call: allocated once, views of them after."""
        self.capacity, self._calls, n = capacity, {}, self.n
        self.order = np.empty((capacity, n), np.int64)
        self.order[...] = self._rows
        self.uniforms = (np.empty((capacity, n * self.units), self.model.dtype) if self.units
                         else None)
        self.losses = np.zeros((capacity, self.batches))
        self.correct = np.zeros(capacity, np.int64)
        width = 1 if self.table is None else self.table.rows(0).shape[1]
        self.scalars = np.zeros((capacity, self.batches, width))
        self._epoch = self.order[:1]  # a batched epoch's order

    def _most_epochs(self):
        """Epochs whose tables (orders, dropout uniforms) fit in ``_CALL_BYTES``."""
        return max(1, _CALL_BYTES // (self.n * (8 + self.units * self.model.dtype.itemsize)))

    def epochs_a_call(self, remaining):
        """Epochs the next call runs: as many as take about ``_CALL_SECONDS`` (by a step's
        time as last measured; one, to measure it, in a model's first fit at this batch
        size), fit ``_CALL_BYTES`` and are at most ``together``."""
        # A step's time as the model's last call at this batch size measured it: a fit after
        # the first needs no one-epoch call to time it.
        step_seconds = self.model._step_seconds.get(self.b)
        if self.per_call == 0 and step_seconds is not None:
            self.per_call = max(1, min(self._most_epochs(), int(
                _CALL_SECONDS / max(step_seconds * self.batches, 1e-9))))
        count = min(remaining, max(self.per_call, 1), self.together or remaining)
        if count > self.capacity:  # a runner not told its fit's epochs
            self._grow(count)
        return count

    def _args(self, count, batch=None):
        """The kernel's arguments for ``count`` epochs, or for batch ``batch`` of a batched
        epoch (views of its rows); built once for each."""
        key = (count, batch)
        if key not in self._calls:
            X, Y, work, layers, spec, coefs, code, state = self._fixed
            if batch is None:
                tables = (self.order[:count], self.scalars[:count],
                          None if self.uniforms is None else self.uniforms[:count],
                          self.losses[:count], self.correct[:count])
            else:
                start, m = batch * self.b, self.size(batch)
                tables = (self._epoch[:, start:start + m], self.scalars[:1, :1],
                          None if self.uniforms is None else self.uniforms[:1, :m * self.units],
                          self.losses[:1, batch:batch + 1], self.correct[:1])
            order, scalars, uniforms, losses, correct = tables
            self._calls[key] = (X, Y, order, self.Xb, self.Yb, self.model._theta,
                                self.model._grad, work, layers, spec, coefs, code, state,
                                scalars, uniforms, self.saved, losses, correct) + self._literals
        return self._calls[key]

    def run(self, count, order=None):
        """The next ``count`` epochs, rows shuffled from the model's random stream as
        ``rng.permutation(n)`` draws them (or, given, ``order`` (count, n)); returns the
        diverged step (``network_train_epoch``) or -1."""
        if order is not None:
            self.order[:count] = order
        if self.units:  # the stream's draws in today's order: each epoch's rows, then uniforms
            for e in range(count):
                self._shuffle(self.order[e:e + 1])
                self.model._rng.random(out=self.uniforms[e], dtype=self.model.dtype)
        elif order is None:
            self._shuffle(self.order[:count])
        self.correct[:count] = 0
        return self._call(count * self.batches, self._args(count))

    def _shuffle(self, rows):
        if self.rng is not None:
            rows[...] = self._rows
            self.rng.permuted(rows, axis=1, out=rows)  # draws as rng.permutation(n) does

    def draw_epoch(self):
        """The order of a batched epoch (then ``run_batch`` each batch)."""
        self._shuffle(self._epoch)
        self.correct[0] = 0

    def size(self, batch):
        return min(self.b, self.n - batch * self.b)

    def run_batch(self, batch):
        """Batch ``batch`` of the epoch ``draw_epoch`` drew, in one call."""
        args = self._args(1, batch)
        if self.units:
            self.model._rng.random(out=args[14], dtype=self.model.dtype)
        return self._call(1, args)

    def _call(self, steps, args):
        if self.table is not None:
            args[13].reshape(steps, -1)[...] = self.table.rows(steps)
        started = time.perf_counter()
        result = self._kernel(*args)
        self.model._step_seconds[self.b] = (time.perf_counter() - started) / steps
        if self.table is not None:  # the steps whose update stayed
            self.table.count(steps if result < 0 else result - (result == steps))
        return result


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
