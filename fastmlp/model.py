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
from dataclasses import dataclass

import numpy as np

from fastmlp import _checks, backends, optim, training
from fastmlp.backends import layout
from fastmlp.backends.contract import (A, ACTIVATIONS, CROSS_ENTROPY, DROPOUT, IDENTITY, L1_COEF,
                                       L2_COEF, LOSS, LOSSES, OUTPUT_ACT, SIGMOID, SOFTMAX, U, Z)
from fastmlp.training import DivergenceError  # noqa: F401 (part of this module's API)

HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh", "identity")
OUTPUTS = ("softmax", "sigmoid", "identity")
_EVAL_CHUNK = 2048  # rows per inference pass: bounds the workspace of forward/evaluate


@dataclass
class _Workspace:
    layers: np.ndarray
    work: np.ndarray
    uniforms: list  # dropout uniform buffers of the hidden layers (training only)
    logits: np.ndarray  # output pre-activation Z, (n, n_outputs)
    outputs: np.ndarray  # output activation A, (n, n_outputs)
    forward: tuple = None  # (kernel, extra) of the forward_kernel hook, for inference


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
        self._step_seconds = {}  # a fit's step time per batch size: how many epochs a call
        self._fit_runner = None  # the last fit's training.EpochRunner, for the next to reuse
        self.history_ = None
        self.stop_training = False  # a callback sets it to end fit after the epoch

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
            work = layout.aligned_zeros(plan.work_size, self.dtype)
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
        if ws.forward is None:
            ws.forward = self.backend.forward_kernel(X, ws.layers, self._spec)
        kernel, extra = ws.forward
        kernel(X, self._theta, ws.work, ws.layers, self._spec, *extra)
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
        return self._score(X, self._Y(y, X.shape[0]))

    def _score(self, X, Y):
        """``evaluate`` on checked arrays."""
        return self._scorer(X, Y)()

    def _scorer(self, X, Y):
        """``evaluate`` of checked ``(X, Y)`` as a zero-argument callable (fit's validation,
        every epoch): chunks through the compiled forward pass, its buffers built once."""
        chunks = [(X[s:s + _EVAL_CHUNK], Y[s:s + _EVAL_CHUNK], _labels(Y[s:s + _EVAL_CHUNK]))
                  for s in range(0, X.shape[0], _EVAL_CHUNK)]
        scratch = {len(Xc): (np.empty((len(Xc), self.sizes[-1]), self.dtype),
                             np.empty(len(Xc), np.int64), np.empty(len(Xc), bool))
                   for Xc, _, _ in chunks}
        out_act, loss, output_loss = self._spec[OUTPUT_ACT], self._spec[LOSS], \
            self.backend.raw.output_loss

        def score():
            total, correct = 0.0, 0
            for Xc, Yc, labels in chunks:
                ws = self._forward_chunk(Xc)
                dZ, predicted, hits = scratch[len(Xc)]
                total += len(Xc) * output_loss(out_act, loss, ws.logits, Yc, ws.outputs, dZ)
                if ws.outputs.shape[1] > 1:
                    ws.outputs.argmax(1, predicted)
                else:
                    np.greater(ws.outputs[:, 0], 0.5, out=predicted, casting="unsafe")
                correct += np.count_nonzero(np.equal(predicted, labels, out=hits))
            return {"loss": total / len(X) + self._penalty(), "accuracy": correct / len(X)}

        return score

    def _penalty(self):
        l1, l2 = self._coefs[L1_COEF], self._coefs[L2_COEF]
        if not (l1 or l2):
            return 0.0
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
            shuffle=True, verbose=0, callbacks=None):
        """Mini-batch gradient descent; ``batch_size=len(X)`` is batch GD, ``1`` stochastic GD.

        Parameters
        ----------
        X : (n_samples, n_features); y : labels or targets, as ``evaluate`` takes them
        optimizer : a name (``"adam"``) or a ``fastmlp.optim.Optimizer``
        epochs : passes over X; batch_size : rows a step, default ``min(32, n_samples)``
        validation_data : ``(X_val, y_val)``, scored after every epoch
        shuffle : draw a new order of the rows every epoch (from the model's seed); with
            one batch an epoch (batch GD) none is drawn: its step sums over all the rows,
            the same in any order but for rounding (a draw of 300 rows costs a fifth of
            the spiral's full-batch step)
        verbose : 0 silent, 1 a progress bar per epoch, 2 one line per epoch
        callbacks : list of ``fastmlp.callbacks.Callback`` (or objects with ``on_*``
            methods), called as Keras calls them; see ``fastmlp.callbacks``

        Returns a ``History`` (also kept as ``self.history_``, updated after every call
        of the epoch kernel, so an interrupted fit keeps the epochs it finished). If the
        loss becomes NaN or infinite, or an update makes the parameters so, raises
        ``DivergenceError`` naming the epoch and batch, with the parameters restored to
        the last ones that gave a finite loss.

        Epochs run in compiled calls of the backend's ``network_train_epoch`` (the
        gather of each batch, its step, its loss, the accuracy count and the divergence
        check), so a batch costs about its ``make_step`` call. Without callbacks and
        validation one call runs many epochs (about 50 ms of them; each epoch's
        ``seconds`` is then its share of the call). Validation data or a callback make a
        call one epoch (a few microseconds of Python an epoch: noticeable only when an
        epoch is one small batch). A callback with a per-batch hook (``on_batch_end``,
        as the seed's ``LossHistory``) makes a call one batch: each batch then pays the
        hook and the switch back to Python, a few microseconds
        (``bench/fit_overhead.py``). A fit with the same optimizer object, data shapes and
        settings as the model's last reuses that fit's buffers, tables and compiled kernel
        (it keeps no reference to the data): a loop of one-epoch fits pays about 50 us of
        Python a call.
        """
        X = self._X(X)
        Y = self._Y(y, X.shape[0])
        n = X.shape[0]
        epochs = _checks.integer("epochs", epochs, 1)
        batch_size = _checks.integer("batch_size", min(32, n) if batch_size is None else batch_size,
                                     1, n)
        verbose = _checks.integer("verbose", int(verbose) if isinstance(verbose, bool)
                                  else verbose, 0, 2)
        opt = optim.get(optimizer)
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be a pair (X_val, y_val)")
            Xv = self._X(validation_data[0], "validation_data[0]")
            validation_data = Xv, self._Y(validation_data[1], Xv.shape[0], "validation_data[1]")
        return training.train(self, X, Y, opt, epochs, batch_size, validation_data, shuffle,
                              verbose, callbacks)

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



