"""``MLP``: the one model interface over every backend.

All parameters live in one flat vector ``_theta`` (``params`` are views of it)
and every per-batch buffer in one flat ``work`` array planned by
``fastmlp.backends.layout``; a workspace is built once per batch shape and reused,
so a training step is one ``network_train_step`` kernel call (loss, gradients and
the optimizer's update).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass

import numpy as np

from fastmlp import _checks, backends, optim
from fastmlp.backends import layout
from fastmlp.backends.contract import (A, ACTIVATIONS, CROSS_ENTROPY, DROPOUT, IDENTITY, L1_COEF,
                                       L2_COEF, LOSS, LOSSES, OUTPUT_ACT, SIGMOID, SOFTMAX, U, Z)
from fastmlp.history import History

HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity")
OUTPUTS = ("softmax", "sigmoid", "identity")
_EVAL_CHUNK = 2048  # rows per inference pass: bounds the workspace of forward/evaluate


class DivergenceError(ArithmeticError):
    """The training loss became NaN or infinite; ``history`` holds what was recorded."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


@dataclass
class _Workspace:
    layers: np.ndarray
    work: np.ndarray
    uniforms: list  # dropout uniform buffers of the hidden layers (training only)
    logits: np.ndarray  # output pre-activation Z, (n, n_outputs)
    outputs: np.ndarray  # output activation A, (n, n_outputs)


class MLP:
    """A multilayer perceptron.

    Parameters
    ----------
    sizes : sequence of int, e.g. ``[784, 512, 512, 10]`` (inputs, hidden..., outputs)
    activation : hidden activation, one of relu, sigmoid, tanh, identity
    output : output activation, one of softmax, sigmoid, identity
    loss : cross_entropy (with softmax or sigmoid output), mse or l1
    backend : python, numpy, numba or cython (see ``fastmlp.backends.available()``)
    dtype : float32 or float64, used end to end
    dropout : inverted-dropout rate of the hidden layers while training, in [0, 1)
    l1, l2 : penalties ``l1 * ||W||_1 + l2 * 0.5 * ||W||_2^2`` on weights, not biases
    seed : seeds initialisation, shuffling and dropout masks
    """

    def __init__(self, sizes, activation="relu", output="softmax", loss="cross_entropy",
                 backend="numpy", dtype="float32", dropout=0.0, l1=0.0, l2=0.0, seed=0):
        self.sizes = _layer_sizes(sizes)
        self.config = dict(activation=activation, output=output, loss=loss, dtype=str(dtype),
                           dropout=dropout, l1=l1, l2=l2, seed=seed)
        hidden = ACTIVATIONS.index(HIDDEN_ACTIVATIONS[_checks.choice("activation", activation,
                                                                     HIDDEN_ACTIVATIONS)])
        out = ACTIVATIONS.index(OUTPUTS[_checks.choice("output", output, OUTPUTS)])
        loss_code = _checks.choice("loss", loss, LOSSES)
        _check_pairing(out, loss_code, self.sizes[-1])
        self.dtype = _checks.float_dtype(dtype)
        self.dropout = _checks.number("dropout", dropout)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._spec = np.array([hidden, out, loss_code], dtype=np.int64)
        self._coefs = np.zeros(3)  # indexed by DROPOUT, L1_COEF, L2_COEF
        self._coefs[DROPOUT] = self.dropout
        self._coefs[L1_COEF] = _checks.number("l1", l1)
        self._coefs[L2_COEF] = _checks.number("l2", l2)
        self.backend = backends.get(backend)
        self._rng = np.random.default_rng(_checks.integer("seed", seed, 0))
        self._theta = np.zeros(layout.theta_offsets(self.sizes)[1], self.dtype)
        self._grad = np.zeros_like(self._theta)
        self.params = layout.param_views(self._theta, layout.plan(self.sizes, 1).layers)
        self.grads = layout.param_views(self._grad, layout.plan(self.sizes, 1).layers)
        self._init_glorot_uniform()
        self._workspaces = {}
        self.history_ = None

    def _init_glorot_uniform(self):
        """Keras's default: W ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)); b = 0."""
        for W in self.params[::2]:
            limit = np.sqrt(6.0 / sum(W.shape))
            W[...] = self._rng.uniform(-limit, limit, W.shape)

    # ------------------------------------------------------------ workspaces

    def _workspace(self, n_samples, training):
        key = (n_samples, training)
        if key not in self._workspaces:
            plan = layout.plan(self.sizes, n_samples, self.dropout, training)
            work = np.zeros(plan.work_size, self.dtype)
            uniforms = [u for u in layout.views(work, plan.layers, U, n_samples) if u is not None]
            self._workspaces[key] = _Workspace(plan.layers, work, uniforms,
                                               layout.views(work, plan.layers, Z, n_samples)[-1],
                                               layout.views(work, plan.layers, A, n_samples)[-1])
        return self._workspaces[key]

    def _stepper(self, X, Y, ws, optimizer, rng):
        """A zero-argument training step on a prepared batch, to be called many times, the
        hot path: everything it can look up is looked up here, once (a small network's
        step is a few microseconds of Python), and the kernel is bound to these arrays'
        types if the backend can (the contract's ``step_kernel`` and ``specialise`` hooks)."""
        arrays = (X, Y, self._theta, self._grad, ws.work, ws.layers, self._spec, self._coefs)
        uniforms, dtype, theta, raw = ws.uniforms, self.dtype, self._theta, self.backend.raw
        next_args = optimizer.fused_step_args("theta", theta)
        kernel, extra = self.backend.step_kernel(X, ws.layers, self._spec)
        if next_args is not None:
            # Arrays like the optimizer's state and scalars, for their types only.
            like = (optimizer.code, np.zeros((1, 1), dtype), np.zeros(1))
            kernel = self.backend.specialise(kernel, arrays + like, extra)

        def fused():  # one compiled call: loss, gradients and the update
            for u in uniforms:
                rng.random(out=u, dtype=dtype)
            return kernel(*arrays, *next_args(), *extra)

        def two_calls():  # an optimizer with its own _update
            for u in uniforms:
                rng.random(out=u, dtype=dtype)
            loss = raw.network_loss_and_grads(*arrays)
            optimizer.apply(raw, "theta", theta, self._grad)
            return loss

        return two_calls if next_args is None else fused

    # ------------------------------------------------------------ input

    def _X(self, X, name="X"):
        return _checks.features(X, self.sizes[0], self.dtype, name)

    def _Y(self, y, n_samples, name="y"):
        return _checks.targets(y, n_samples, self.sizes[-1], self._spec[OUTPUT_ACT],
                               self._spec[LOSS], self.dtype, name)

    # ------------------------------------------------------------ inference

    def forward(self, X):
        """Output activations, ``(n_samples, n_outputs)``; dropout off."""
        X = self._X(X)
        out = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for start in range(0, X.shape[0], _EVAL_CHUNK):
            ws = self._forward_chunk(X[start:start + _EVAL_CHUNK])
            out[start:start + _EVAL_CHUNK] = ws.outputs
        return out

    def _forward_chunk(self, X):
        ws = self._workspace(X.shape[0], training=False)
        self.backend.raw.network_forward(X, self._theta, ws.work, ws.layers, self._spec)
        return ws

    predict_proba = forward

    def predict(self, X):
        """Class labels for classifiers (argmax, or threshold 0.5 for one sigmoid unit);
        the outputs themselves for an identity output."""
        P = self.forward(X)
        if self._spec[OUTPUT_ACT] == IDENTITY:
            return P
        return _labels(P)

    def evaluate(self, X, y):
        """``{"loss": .., "accuracy": ..}`` with dropout off; loss includes the penalties."""
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        total, correct = 0.0, 0.0
        for start in range(0, X.shape[0], _EVAL_CHUNK):
            Xc, Yc = X[start:start + _EVAL_CHUNK], Y[start:start + _EVAL_CHUNK]
            ws = self._forward_chunk(Xc)
            dZ = np.empty_like(ws.logits)
            total += len(Xc) * self.backend.raw.output_loss(
                self._spec[OUTPUT_ACT], self._spec[LOSS], ws.logits, Yc, ws.outputs, dZ)
            correct += _accuracy(ws.outputs, Yc) * len(Xc)
        return {"loss": total / len(X) + self._penalty(), "accuracy": correct / len(X)}

    def _penalty(self):
        l1, l2 = self._coefs[L1_COEF], self._coefs[L2_COEF]
        weights = self.params[::2]
        return float(sum(l1 * np.abs(W).sum() + 0.5 * l2 * (W * W).sum() for W in weights))

    # ------------------------------------------------------------ training

    def loss_and_grads(self, X, y, dropout_seed=None):
        """Loss (with penalties) and gradients aligned with ``params``, on the whole of X.

        Dropout is off unless ``dropout_seed`` is given: then the masks are drawn
        from that seed, so repeated calls see the same mask (for gradient checks).
        """
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        rng = np.random.default_rng(dropout_seed)
        coefs = self._coefs.copy()
        if dropout_seed is None:
            coefs[DROPOUT] = 0.0
        ws = self._workspace(X.shape[0], training=True)
        for u in ws.uniforms:
            rng.random(out=u, dtype=self.dtype)
            if dropout_seed is None:
                u.fill(1)  # keeps every unit: U >= p always holds
        loss = self.backend.raw.network_loss_and_grads(X, Y, self._theta, self._grad, ws.work,
                                                       ws.layers, self._spec, coefs)
        return loss, [g.copy() for g in self.grads]

    def make_step(self, X, y, optimizer):
        """A zero-argument callable running one training step on this batch; returns the loss.

        Validation happens once, here; each call is one ``network_train_step`` kernel
        (what the step benchmarks time).
        """
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        ws, opt, rng = self._workspace(X.shape[0], True), optim.get(optimizer), self._rng
        return self._stepper(X, Y, ws, opt, rng)

    def fit(self, X, y, optimizer="rmsprop", epochs=1, batch_size=None, validation_data=None,
            shuffle=True, verbose=0):
        """Mini-batch gradient descent; ``batch_size=len(X)`` is batch GD, ``1`` stochastic GD.

        ``batch_size`` defaults to 32, or ``len(X)`` when there are fewer rows.

        Returns a ``History`` (also kept as ``self.history_``, updated every epoch,
        so an interrupted fit keeps the epochs it finished). If the loss becomes
        NaN or infinite, raises ``DivergenceError`` naming the epoch and batch,
        with the parameters restored to their last finite values.
        """
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        n = X.shape[0]
        epochs = _checks.integer("epochs", epochs, 1)
        batch_size = _checks.integer("batch_size", min(32, n) if batch_size is None else batch_size,
                                     1, n)
        opt = optim.get(optimizer)
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = self._X(validation_data[0], "validation_data[0]")
            validation_data = Xv, self._Y(validation_data[1], Xv.shape[0], "validation_data[1]")
        self.history_ = history = History()
        batches = _Batches(X, Y, batch_size, self._rng if shuffle else None)
        guard, steps = _FiniteGuard(self._theta), {}  # steps: one per batch size, reused
        for epoch in range(1, epochs + 1):
            started, losses, correct = time.perf_counter(), [], 0.0
            for index, (Xb, Yb) in enumerate(batches):
                guard.save()
                if len(Xb) not in steps:  # the batch buffers are the same arrays every time
                    steps[len(Xb)] = self._stepper(Xb, Yb, self._workspace(len(Xb), True), opt,
                                                   self._rng)
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is checked below
                    loss = steps[len(Xb)]()
                if not np.isfinite(loss):
                    guard.restore()
                    raise DivergenceError(
                        f"loss became {loss} at epoch {epoch}, batch {index + 1}; the "
                        "parameters were restored to their last finite values. Try a smaller "
                        f"learning rate than lr={opt.lr}.", history)
                losses.append(loss)
                history.batch_losses.append(loss)
                correct += _accuracy(self._workspace(len(Xb), True).outputs, Yb) * len(Xb)
            row = dict(epoch=epoch, loss=float(np.mean(losses)), accuracy=correct / n)
            if validation_data is not None:
                scores = self.evaluate(*validation_data)
                row.update(val_loss=scores["loss"], val_accuracy=scores["accuracy"])
            history.append(seconds=time.perf_counter() - started, **row)
            if verbose:
                print(_epoch_line(history.rows[-1], epochs), flush=True)
        return history

    # ------------------------------------------------------------ conversion and files

    def to_backend(self, backend):
        """A copy of this model (parameters and random state) on another backend."""
        other = MLP(self.sizes, backend=backend, **self.config)
        other._theta[...] = self._theta
        other._rng = copy.deepcopy(self._rng)
        return other

    def save(self, path):
        """Write the parameters and settings to an ``.npz`` file (no pickle)."""
        np.savez(path, theta=self._theta, sizes=np.array(self.sizes),
                 config=np.array(json.dumps({**self.config, "backend": self.backend.name})))

    @classmethod
    def load(cls, path, backend=None):
        """Read a model written by ``save``; ``backend`` overrides the saved one."""
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("theta", "sizes", "config") if k not in data.files]
            config = json.loads(str(data["config"])) if "config" in data.files else None
            fields = ("backend", "activation", "output", "loss", "dtype", "dropout", "l1", "l2",
                      "seed")  # what save writes
            missing += [f"config[{k!r}]" for k in fields if config is not None and k not in config]
            if missing:
                raise ValueError(f"{path}: not a model written by MLP.save (of this version): "
                                 f"missing {', '.join(missing)}")
            saved_backend = config.pop("backend")
            model = cls(data["sizes"].tolist(), backend=backend or saved_backend, **config)
            if data["theta"].shape != model._theta.shape:
                raise ValueError(f"{path}: theta has {data['theta'].size} values, the layer "
                                 f"sizes need {model._theta.size}")
            model._theta[...] = data["theta"]
        return model

    def __repr__(self):
        return (f"MLP({list(self.sizes)}, backend={self.backend.name!r}, "
                + ", ".join(f"{k}={v!r}" for k, v in self.config.items()) + ")")


class _Batches:
    """Mini-batches of (X, Y), in order or shuffled, gathered into buffers reused for every
    batch of a size (so that a training step bound to them serves every batch)."""

    def __init__(self, X, Y, batch_size, rng):
        self.X, self.Y, self.size, self.rng = X, Y, batch_size, rng
        self._buffers = {}

    def __iter__(self):
        n = len(self.X)
        order = self.rng.permutation(n) if self.rng is not None else None
        for start in range(0, n, self.size):
            stop = min(start + self.size, n)
            Xb, Yb = self._buffer(stop - start)
            if order is None:
                Xb[...], Yb[...] = self.X[start:stop], self.Y[start:stop]
            else:
                np.take(self.X, order[start:stop], axis=0, out=Xb)
                np.take(self.Y, order[start:stop], axis=0, out=Yb)
            yield Xb, Yb

    def _buffer(self, rows):
        if rows not in self._buffers:
            self._buffers[rows] = (np.empty((rows, self.X.shape[1]), self.X.dtype),
                                   np.empty((rows, self.Y.shape[1]), self.Y.dtype))
        return self._buffers[rows]


class _FiniteGuard:
    """Keeps the parameters of the last two steps, to undo a step that diverged."""

    def __init__(self, theta):
        self.theta = theta
        self.saved = [theta.copy(), theta.copy()]
        self.turn = 0

    def save(self):
        self.turn ^= 1
        np.copyto(self.saved[self.turn], self.theta)

    def restore(self):
        # The loss was computed from the parameters saved last; if they are
        # already non-finite, the step before produced them: go back one more.
        latest, before = self.saved[self.turn], self.saved[self.turn ^ 1]
        np.copyto(self.theta, latest if np.isfinite(latest).all() else before)


def _layer_sizes(sizes):
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}") from None
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output width, got {sizes!r}")
    return tuple(_checks.integer(f"sizes[{i}]", s, 1) for i, s in enumerate(sizes))


def _check_pairing(output, loss, n_outputs):
    if loss == CROSS_ENTROPY and output not in (SOFTMAX, SIGMOID):
        raise ValueError("loss='cross_entropy' needs output='softmax' or 'sigmoid', "
                         f"got output='{ACTIVATIONS[output]}'")
    if output == SOFTMAX and n_outputs < 2:
        raise ValueError(f"output='softmax' needs at least 2 output units, got {n_outputs}")


def _labels(P):
    return P.argmax(axis=1) if P.shape[1] > 1 else (P[:, 0] > 0.5).astype(np.int64)


def _accuracy(P, Y):
    """Share of rows classified right: argmax for several outputs, threshold 0.5 for one."""
    if P.shape[1] > 1:
        return float(np.mean(P.argmax(axis=1) == Y.argmax(axis=1)))
    return float(np.mean((P[:, 0] > 0.5) == (Y[:, 0] > 0.5)))


def _epoch_line(row, epochs):
    parts = [f"epoch {row['epoch']}/{epochs}", f"{row['seconds']:.2f}s",
             f"loss {row['loss']:.4f}", f"accuracy {row['accuracy']:.4f}"]
    if row["val_loss"] is not None:
        parts += [f"val_loss {row['val_loss']:.4f}", f"val_accuracy {row['val_accuracy']:.4f}"]
    return " - ".join(parts)
