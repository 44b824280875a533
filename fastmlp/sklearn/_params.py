"""Parameter checks and the tables mapping scikit-learn's names onto fastmlp's.

scikit-learn validates parameters when ``fit`` runs, not in ``__init__`` (so that
``set_params`` and ``clone`` stay plain attribute copies): ``validate`` does that.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastmlp import _checks, backends, optim

#: scikit-learn's activation names -> fastmlp's.
ACTIVATIONS = {"relu": "relu", "logistic": "sigmoid", "tanh": "tanh", "identity": "identity"}

#: Backends ``backend="auto"`` tries, fastest first.
AUTO_BACKENDS = ("cython", "numba", "numpy")


class SklearnAdam(optim.Adam):
    """scikit-learn's Adam: ``eps`` added to ``sqrt(v)`` before the bias correction, which
    is torch's rule with ``eps / sqrt(1 - beta2**t)`` at step ``t``."""

    def _scalars(self, t):
        return _eps_corrected(*super()._scalars(t))

    def _table_scalars(self, t):
        return _eps_corrected(*super()._table_scalars(t))


def _eps_corrected(step, beta1, beta2, eps, correction, *rest):
    return (step, beta1, beta2, eps / correction, correction, *rest)


def _adam(p, scale):
    return SklearnAdam(lr=p["learning_rate_init"], betas=(p["beta_1"], p["beta_2"]),
                      eps=p["epsilon"] * scale)


def _sgd(p, scale):
    # torch's momentum buffer is scikit-learn's velocity divided by -lr: the same steps
    # at a constant learning rate, Nesterov's included.
    return optim.SGD(lr=p["learning_rate_init"] / scale, momentum=p["momentum"],
                     nesterov=p["nesterovs_momentum"] and p["momentum"] > 0)


def _rmsprop(p, scale):
    return optim.RMSprop(lr=p["learning_rate_init"], eps=p["epsilon"] * scale)


def _adagrad(p, scale):
    return optim.Adagrad(lr=p["learning_rate_init"], eps=p["epsilon"] * scale)


#: solver name -> (checked parameters, scale) -> fastmlp optimizer. ``scale`` is fastmlp's loss
#: over scikit-learn's (gradients are ``scale`` times larger): SGD's step is divided by
#: it, and the adaptive solvers, invariant to it, get their epsilon multiplied by it.
SOLVERS = {"adam": _adam, "sgd": _sgd, "rmsprop": _rmsprop, "adagrad": _adagrad}


def _real(low, high=math.inf, low_open=False, high_open=True):
    return lambda name, value: _checks.number(name, value, low, high, low_open, high_open)


def _integer(low):
    return lambda name, value: _checks.integer(name, value, low)


def _boolean(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _choice(*options):
    return lambda name, value: options[_checks.choice(name, value, options)]


def _solver(name, value):
    if value == "lbfgs":
        raise ValueError(f"{name}='lbfgs' is not available: fastmlp trains by mini-batches; "
                         f"choose one of {list(SOLVERS)}")
    return _choice(*SOLVERS)(name, value)


def hidden_sizes(name, value):
    """``hidden_layer_sizes`` as a tuple of ints >= 1 (an int is one layer)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        sizes = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got "
                        f"{type(value).__name__} {value!r}") from None
    return tuple(_checks.integer(f"{name}[{i}]", s, 1) for i, s in enumerate(sizes))


def _batch_size(name, value):
    return value if value == "auto" else _checks.integer(name, value, 1)


def _n_iter_no_change(name, value):
    return value if value == np.inf else _checks.integer(name, value, 1)


def _verbose(name, value):
    return _checks.integer(name, int(value) if isinstance(value, (bool, np.bool_)) else value, 0)


def backend_name(name, value):
    """The backend to train on: ``"auto"`` is the first of ``AUTO_BACKENDS`` that imports."""
    if value == "auto":
        for name in AUTO_BACKENDS:  # imported one at a time: Numba's import takes a second
            try:
                backends.get(name)
                return name
            except ImportError:
                continue
    if value not in backends.MODULES:
        raise ValueError(f"{name} must be 'auto' or one of {list(backends.MODULES)}, "
                         f"got {value!r}")
    backends.get(value)  # ImportError with the reason if it is not usable here
    return value


#: Parameter name -> check returning the value to use, or raising naming the parameter.
CHECKS = {
    "hidden_layer_sizes": hidden_sizes,
    "activation": lambda name, value: ACTIVATIONS[_choice(*ACTIVATIONS)(name, value)],
    "solver": _solver,
    "alpha": _real(0),
    "batch_size": _batch_size,
    "learning_rate_init": _real(0, low_open=True),
    "max_iter": _integer(1),
    "shuffle": _boolean,
    "tol": _real(0),
    "verbose": _verbose,
    "warm_start": _boolean,
    "momentum": _real(0, 1, high_open=False),
    "nesterovs_momentum": _boolean,
    "early_stopping": _boolean,
    "validation_fraction": _real(0, 1),
    "beta_1": _real(0, 1),
    "beta_2": _real(0, 1),
    "epsilon": _real(0, low_open=True),
    "n_iter_no_change": _n_iter_no_change,
    "backend": backend_name,
    "dtype": lambda name, value: _checks.float_dtype(value),
    "dropout": _real(0, 1),
    "l1": _real(0),
}


def validate(estimator):
    """``{name: checked value}`` of the estimator's parameters; raises on the first bad one
    (random_state is checked by ``check_random_state`` where it is used)."""
    return {name: check(name, getattr(estimator, name)) for name, check in CHECKS.items()}
