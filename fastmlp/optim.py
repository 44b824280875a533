"""Optimizers with ``torch.optim``'s update rules and defaults.

An optimizer holds its hyper-parameters and a state per parameter, and runs
each update as one backend kernel per parameter, in place. Subclasses only say
what state they keep and which kernel they call with which scalars.

How the Keras defaults used by the seed notes differ, and how to get them:

==========  ==========================================  ========================================
optimizer   Keras default                               fastmlp (torch) default / Keras setting
==========  ==========================================  ========================================
SGD         lr=0.01                                     lr required; ``SGD(lr=0.01)``
RMSprop     lr=0.001, rho=0.9, epsilon=1e-7             lr=0.01, alpha=0.99, eps=1e-8;
                                                        ``RMSprop(lr=1e-3, alpha=0.9, eps=1e-7)``
Adam        lr=0.001, epsilon=1e-7 added to sqrt(v)     lr=1e-3, eps=1e-8 added to sqrt(v_hat);
            before bias correction                      ``Adam(eps=1e-7)`` is close: Keras's eps
                                                        is torch's eps * sqrt(1 - beta2**t)
Adagrad     lr=0.001, initial_accumulator_value=0.1,    lr=0.01, initial_accumulator_value=0,
            epsilon=1e-7                                eps=1e-10; ``Adagrad(lr=1e-3,
                                                        initial_accumulator_value=0.1, eps=1e-7)``
==========  ==========================================  ========================================
"""
from __future__ import annotations

import math

import numpy as np

from fastmlp import backends
from fastmlp._checks import number as _number
from fastmlp.backends import contract


class Optimizer:
    """Base class: per-parameter state and step counts, one kernel call per parameter.

    A subclass names its update kernel by ``code`` (``contract.OPTIMIZERS``) and
    says which scalars that kernel takes at step ``t`` (``_scalars``); the same
    scalars feed the model's fused ``network_train_step`` (``fused_step_args``).
    A subclass that overrides ``_update`` runs it instead (``fusable`` is then False).
    """

    code = None  # contract.OPTIMIZERS code: which update kernel runs
    state_rows = 1  # rows of state per parameter: what the update kernel's ``state`` takes
    fusable = False  # whether network_train_step can run this optimizer's update
    _version = 0  # changes of the settings so far (``__setattr__``): a ScalarTable's staleness

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.code is not None and "state_rows" not in vars(cls):
            cls.state_rows = contract.update_state_rows(cls.code)
        # A subclass with its own _update runs it: only the contract's kernels are fused.
        cls.fusable = cls.code is not None and cls._update is Optimizer._update

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if not name.startswith("_"):  # a setting: the scalar tables of it are stale
            super().__setattr__("_version", self._version + 1)

    def __init__(self, lr, weight_decay=0.0):
        self.lr = _number("lr", lr, low_open=True)
        self.weight_decay = _number("weight_decay", weight_decay)
        self._state = {}  # key -> (state array, steps taken)

    def step(self, params, grads, backend="numpy"):
        """Update every array of ``params`` in place from the matching ``grads``.

        Parameters
        ----------
        params, grads : lists of C-contiguous float arrays, aligned, same shapes
        backend : name of the backend whose kernels run the update
        """
        if len(params) != len(grads):
            raise ValueError(f"params and grads must align: {len(params)} params, "
                             f"{len(grads)} grads")
        kernels = backends.get(backend)
        for key, (param, grad) in enumerate(zip(params, grads)):
            _check_param(key, param, grad)
            self.apply(kernels, key, param.reshape(-1), np.ascontiguousarray(grad).reshape(-1))

    def apply(self, kernels, key, param, grad):
        """One update of a flat parameter, unchecked: the model's path.

        Parameters
        ----------
        kernels : a backend (``backends.get(name)``) or its ``raw`` kernels
        key : hashable, the name this parameter's state and step count are kept under
        param : (n,) float array, updated in place; grad : (n,) its gradient
        """
        state, t = self._advance(key, param)
        self._update(kernels, param, grad, state, t)

    def _advance(self, key, param):
        """Count a step of the flat ``param`` stored under ``key``: its state and step ``t``."""
        state, steps = self._state_of(key, param)
        self._state[key] = (state, steps + 1)
        return state, steps + 1

    def _state_of(self, key, param):
        """The state of the flat ``param`` stored under ``key`` (made on first use) and the
        steps it has taken."""
        state, steps = self._state.get(key, (None, 0))
        if (state is None or state.shape[-1] != param.size
                or (state.dtype is not param.dtype and state.dtype != param.dtype)):
            if state is not None:
                raise ValueError(f"parameter {key} changed from {state.shape[-1]} "
                                 f"{state.dtype} values to {param.size} {param.dtype}")
            state = self._new_state(param)
            self._state[key] = (state, steps)
        return state, steps

    def fused_step_args(self, key, param):
        """The arguments of this optimizer's update inside ``network_train_step``.

        Parameters
        ----------
        key : hashable, the name ``param``'s state and step count are kept under
        param : (n,) float array, the flat parameter the fused step updates

        Returns
        -------
        A callable returning ``(optimizer, state, scalars)``, network_train_step's last
        three arguments, for the next step of ``param`` (and counting that step), or None
        when ``fusable`` is False. It runs every training step: the checks happen here, once.
        """
        if not self.fusable:
            return None
        return ScalarTable(self, key, param, ScalarTable.STEP_BLOCK).step_args

    def scalar_table(self, key, param, steps=None):
        """The scalars of ``param``'s next steps as ``network_train_epoch`` takes them,
        computed ``steps`` (the caller's whole run, when it knows it) at a time.

        Returns a ``ScalarTable``, or None when ``fusable`` is False.
        """
        return ScalarTable(self, key, param, steps) if self.fusable else None

    def _new_state(self, param):
        return np.zeros((self.state_rows, param.size), param.dtype)

    def _update(self, kernels, param, grad, state, t):
        kernel = getattr(kernels, contract.UPDATE_KERNELS[self.code])
        kernel(param, grad, state if self.state_rows > 1 else state[0], *self._scalars(t))

    def _scalars(self, t):  # pragma: no cover - abstract
        """The update kernel's scalar arguments at step ``t`` (1 on the first step); ``t``
        may also be an int64 array of steps (then each value an array or a constant)."""
        raise NotImplementedError

    def _table_scalars(self, t):
        """``_scalars`` of an int64 array of steps (a ``ScalarTable``'s block); a subclass
        that changes ``_scalars`` changes this too."""
        return self._scalars(t)

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({settings})"


class ScalarTable:
    """An optimizer's scalars for the next steps of one parameter, a row a step, computed a
    block of steps at a time (vectorised: each epoch call only takes a view).

    ``rows(m)`` is the ``(m, n_scalars)`` float64 table of the next m steps (a view, valid
    until the next call); ``count(m)`` counts m steps taken, and ``state`` is the state.
    ``step_args()`` gives one step's row and counts it (``make_step``, a step at a time).
    The table is recomputed when it runs out or a setting of the optimizer changed.
    """

    BLOCK = 1 << 14  # steps computed at once, at most: 16k rows took 1.7 ms to compute
    SHORTEST = 64  # and at least: 64 rows cost as 1 (15 us), and a loop of short fits reuses them
    #: Steps computed at once for ``step_args`` (``make_step``): ~0.03 us of a step each.
    STEP_BLOCK = 1024

    def __init__(self, optimizer, key, param, steps=None):
        self.optimizer, self.key = optimizer, key
        # A short fit computes its own steps' rows, not BLOCK of them (most of its set-up).
        self.block = self.BLOCK if steps is None else max(self.SHORTEST, min(self.BLOCK, steps))
        self.code = optimizer.code
        self.state = optimizer._state_of(key, param)[0]
        self._table = np.zeros((0, len(contract.update_scalars(optimizer.code))))
        self._first = 0  # the step of the table's first row
        self._made_with = None  # the settings' version it was computed with (a callback,
        # or a user between make_step calls, may change lr)

    @property
    def steps(self):
        return self.optimizer._state[self.key][1]

    def _at(self, first, m):
        """Row of step ``first`` in the table, recomputed from there if the table does not
        hold the m steps from it with the optimizer's current settings."""
        at = first - self._first
        if at < 0 or at + m > len(self._table) or self.optimizer._version != self._made_with:
            self._made_with = self.optimizer._version
            self._first, at = first, 0
            t = np.arange(first, first + max(m, self.block), dtype=np.int64)
            self._table = np.empty((len(t), self._table.shape[1]))
            for column, value in enumerate(self.optimizer._table_scalars(t)):
                self._table[:, column] = value
        return at

    def rows(self, m):
        at = self._at(self.steps + 1, m)
        return self._table[at:at + m]

    def step_args(self):
        """``(code, state, scalars)``, ``network_train_step``'s last three arguments for the
        next step, counting that step: the scalars are the table's row (a view), so a step
        computes no power and packs nothing (that took a third of the XOR step's 2 us)."""
        entries = self.optimizer._state
        state, steps = entries[self.key]
        at = self._at(steps + 1, 1)
        entries[self.key] = (state, steps + 1)
        return self.code, state, self._table[at]

    def count(self, m):
        entries = self.optimizer._state
        entries[self.key] = (entries[self.key][0], entries[self.key][1] + m)


def _power_cap(beta):
    """The first t with ``beta ** t < 2**-60``, for beta in [0, 1)."""
    return 1 if beta <= 0 else 1 + math.ceil(-60 * math.log(2) / math.log(beta))


def _root(x):
    """sqrt of a float (math's, as the kernels always had) or of an array of them."""
    return np.sqrt(x) if isinstance(x, np.ndarray) else math.sqrt(x)


def _check_param(key, param, grad):
    for what, array in (("params", param), ("grads", grad)):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{what}[{key}] must be a numpy.ndarray, got {type(array).__name__}")
    if param.shape != grad.shape:
        raise ValueError(f"grads[{key}] has shape {grad.shape}, params[{key}] has {param.shape}")
    if not (param.flags.c_contiguous and param.flags.writeable):
        raise ValueError(f"params[{key}] is updated in place and must be C-contiguous and "
                         "writeable")


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum."""

    code = contract.SGD

    def __init__(self, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.momentum = _number("momentum", momentum)
        self.dampening = _number("dampening", dampening)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening == 0, got "
                             f"momentum={self.momentum}, dampening={self.dampening}")

    def _scalars(self, t):
        # torch starts the momentum buffer at the first gradient: no dampening then.
        dampening = self.dampening * (t != 1)
        return self.lr, self.momentum, dampening, self.nesterov, self.weight_decay


class RMSprop(Optimizer):
    """RMSprop, optionally centered and with momentum."""

    code = contract.RMSPROP

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, centered=False,
                 weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.alpha = _number("alpha", alpha, high=1.0, high_open=False)
        self.eps = _number("eps", eps)
        self.momentum = _number("momentum", momentum)
        self.centered = bool(centered)

    def _scalars(self, t):
        return self.lr, self.alpha, self.eps, self.momentum, self.centered, self.weight_decay


class Adam(Optimizer):
    """Adam, optionally AMSGrad (L2 weight decay added to the gradient, as torch's Adam)."""

    code = contract.ADAM

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(lr, weight_decay)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_number("betas[0]", betas[0], high=1.0),
                      _number("betas[1]", betas[1], high=1.0))
        self.eps = _number("eps", eps)
        self.amsgrad = bool(amsgrad)

    def _scalars(self, t):
        beta1, beta2 = self.betas
        return (self.lr / (1 - beta1 ** t), beta1, beta2, self.eps, _root(1 - beta2 ** t),
                self.weight_decay, self.amsgrad)

    def _table_scalars(self, t):
        # As _scalars, each power's steps capped where it drops below 2**-60 (1 minus it is
        # 1.0 exactly from there on): a long fit's powers underflowed into NumPy's slow path
        # for rare results, 14% of an XOR fit (perf). Not in _scalars: a step's own pow is fast.
        beta1, beta2 = self.betas
        decay1, decay2 = (beta ** np.minimum(t, _power_cap(beta)) for beta in self.betas)
        return (self.lr / (1 - decay1), beta1, beta2, self.eps, np.sqrt(1 - decay2),
                self.weight_decay, self.amsgrad)


class Adagrad(Optimizer):
    """Adagrad with learning-rate decay."""

    code = contract.ADAGRAD

    def __init__(self, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10):
        super().__init__(lr, weight_decay)
        self.lr_decay = _number("lr_decay", lr_decay)
        self.initial_accumulator_value = _number("initial_accumulator_value",
                                                 initial_accumulator_value)
        self.eps = _number("eps", eps)

    def _new_state(self, param):
        return np.full((1, param.size), self.initial_accumulator_value, param.dtype)

    def _scalars(self, t):
        return self.lr / (1 + (t - 1) * self.lr_decay), self.eps, self.weight_decay


#: Names users type -> optimizer class.
OPTIMIZERS = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adagrad": Adagrad}


def get(optimizer, **settings) -> Optimizer:
    """An optimizer from a name (``"adam"``, with ``settings``) or an instance, as it is."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)} or an Optimizer, "
                         f"got {optimizer!r}")
    cls = OPTIMIZERS[optimizer.lower()]
    if cls is SGD and "lr" not in settings:
        settings["lr"] = 0.01  # torch requires lr for SGD; a name alone gets Keras's default
    return cls(**settings)
