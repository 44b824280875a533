"""The estimator base: parameters, the training loop and the fitted attributes.

It follows ``sklearn/neural_network/_multilayer_perceptron.py`` step by step (the
same initialisation and random draws, the same epoch loop, stopping rules and
messages), with each mini-batch step run by a ``fastmlp.MLP``.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from fastmlp import backends
from fastmlp.model import MLP
from fastmlp.sklearn import _params
from fastmlp.training import EpochRunner

#: sklearn's output activation -> (fastmlp output, fastmlp loss, scale(n_outputs)), where
#: scale is fastmlp's loss over scikit-learn's: fastmlp averages binary cross-entropy and
#: squared error over outputs too, and its squared error has no factor 1/2.
OUTPUTS = {
    "softmax": ("softmax", "cross_entropy", lambda k: 1.0),
    "logistic": ("sigmoid", "cross_entropy", lambda k: 1.0 / k),
    "identity": ("identity", "mse", lambda k: 2.0 / k),
}


class BaseMLP(BaseEstimator):
    """Shared by ``MLPClassifier`` and ``MLPRegressor``; see their docstrings."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, backend="auto", dtype="float32", dropout=0.0, l1=0.0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.dtype = dtype
        self.dropout = dropout
        self.l1 = l1

    # ------------------------------------------------------------ fitted attributes

    @property
    def coefs_(self):
        """Weight matrices, ``(fan_in, fan_out)`` each: views of the network's parameters."""
        return self._model.params[::2]

    @property
    def intercepts_(self):
        """Bias vectors, ``(fan_out,)`` each: views of the network's parameters."""
        return self._model.params[1::2]

    # ------------------------------------------------------------ fitting

    def fit(self, X, y):
        """Fit the model to ``X`` ``(n_samples, n_features)`` and targets ``y``; returns self."""
        return self._fit(X, y, incremental=False)

    def _fit(self, X, y, incremental):
        p = _params.validate(self)
        first = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, incremental, reset=first, dtype=p["dtype"])
        if incremental and p["early_stopping"]:
            raise ValueError("partial_fit does not support early_stopping=True")
        rs = check_random_state(self.random_state)
        initial = self._initialize(X.shape[1], Y.shape[1], p, rs) if first else None
        if not first and (self.n_layers_ != len(p["hidden_layer_sizes"]) + 2 or any(
                W.shape[1] != h for W, h in zip(self.coefs_, p["hidden_layer_sizes"]))):
            raise ValueError("hidden_layer_sizes changed from the fitted network's "
                             f"{tuple(W.shape[1] for W in self.coefs_[:-1])} to "
                             f"{p['hidden_layer_sizes']}; fit with warm_start=False")
        X_train, Y_train, X_val, y_val = self._split(X, Y, p, rs)
        n = X_train.shape[0]
        if p["batch_size"] == "auto":
            batch_size = min(200, n)
        else:
            if p["batch_size"] > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped")
            batch_size = min(p["batch_size"], n)
        scale = OUTPUTS[self.out_activation_][2](self.n_outputs_)
        self._network(p, scale * p["alpha"] / batch_size, scale, rs, initial)
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = _params.SOLVERS[p["solver"]](p, scale)
        epochs = _Epochs(self._model, self._optimizer, X_train, Y_train, batch_size)
        self._run(epochs, p, scale, rs, X_val, y_val, incremental)
        return self

    def _initialize(self, n_features, n_outputs, p, rs):
        """First fit: scikit-learn's attributes; returns its initial weights, from the same
        draws, as ``[W1, b1, W2, b2, ...]``."""
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(p["hidden_layer_sizes"]) + 2
        self.out_activation_ = self._output_activation()
        sizes = (n_features, *p["hidden_layer_sizes"], n_outputs)
        factor = 2.0 if p["activation"] == "sigmoid" else 6.0  # Glorot's, as scikit-learn
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            params += [rs.uniform(-bound, bound, (fan_in, fan_out)),
                       rs.uniform(-bound, bound, fan_out)]
        self._mlp_args = {}  # no network yet: _network builds it
        self._best_params = [q.copy() for q in params]
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if p["early_stopping"]:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = self.best_validation_score_ = None
            self.best_loss_ = np.inf
        return params

    def _network(self, p, l2, scale, rs, params=None):
        """Keep ``self._model`` a ``fastmlp.MLP`` with these settings and ``params`` (or its
        own, carried over when a setting changed: fastmlp's penalties are fixed per model)."""
        output, loss, _ = OUTPUTS[self.out_activation_]
        sizes = (self._mlp_args["sizes"] if params is None else
                 (params[0].shape[0], *(W.shape[1] for W in params[::2])))
        args = dict(sizes=sizes, activation=p["activation"],
                    output=output, loss=loss, backend=p["backend"], dtype=str(p["dtype"]),
                    dropout=p["dropout"], l1=scale * p["l1"], l2=l2)
        if args == self._mlp_args:
            return
        params = params if params is not None else self._model.params
        # The seed only draws dropout masks: without dropout, scikit-learn's draws stay intact.
        seed = int(rs.randint(2**31 - 1)) if p["dropout"] else 0
        self._model, self._mlp_args = _build(args, params, seed), args
        self.backend_ = args["backend"]

    def _split(self, X, Y, p, rs):
        """Training rows and, with early stopping, validation rows (their ``y`` as scored)."""
        if not p["early_stopping"]:
            return X, Y, None, None
        stratify = self._stratify(Y)
        X_train, X_val, Y_train, Y_val = train_test_split(
            X, Y, random_state=rs, test_size=p["validation_fraction"], stratify=stratify)
        if X_val.shape[0] < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        return X_train, Y_train, X_val, self._scored_targets(Y_val)

    def _run(self, epochs, p, scale, rs, X_val, y_val, incremental):
        """The epoch loop of scikit-learn's ``_fit_stochastic``."""
        order = np.arange(epochs.n_rows)
        try:
            self.n_iter_ = 0
            for _ in range(p["max_iter"]):
                if p["shuffle"]:  # sklearn.utils.shuffle's draws, without its input checks
                    indices = np.arange(len(order))
                    rs.shuffle(indices)
                    order = order[indices]
                self.loss_ = epochs.run(order if p["shuffle"] else None) / scale
                self.n_iter_ += 1
                self.t_ += epochs.n_rows
                self.loss_curve_.append(self.loss_)
                if p["verbose"]:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._count_no_improvement(p, X_val, y_val)
                if self._no_improvement_count > p["n_iter_no_change"]:
                    what = "Validation score" if p["early_stopping"] else "Training loss"
                    if p["verbose"]:
                        print(f"{what} did not improve more than tol={p['tol']:f} for "
                              f"{p['n_iter_no_change']} consecutive epochs. Stopping.")
                    break
                if incremental:
                    break
                if self.n_iter_ == p["max_iter"]:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({p['max_iter']}) "
                                  "reached and the optimization hasn't converged yet.",
                                  ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if p["early_stopping"]:
            for param, best in zip(self._model.params, self._best_params):
                param[...] = best

    def _count_no_improvement(self, p, X_val, y_val):
        """scikit-learn's ``_update_no_improvement_count``: epochs without progress by tol."""
        if p["early_stopping"]:
            score = self._score_rows(X_val, y_val)
            self.validation_scores_.append(score)
            if p["verbose"]:
                print("Validation score: %f" % score)
            if score < self.best_validation_score_ + p["tol"]:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_params = [q.copy() for q in self._model.params]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - p["tol"]:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])

    # ------------------------------------------------------------ inference

    def _outputs(self, X):
        """The network's outputs for validated ``X``, ``(n_samples, n_outputs)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self._model.dtype, order="C")
        return self._model.forward(X)

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        """Pickle the network as its settings and parameter arrays (a backend is a module)."""
        state = dict(super().__getstate__())  # object's is __dict__ itself, not a copy
        if state.get("_model") is not None:
            state["_model"] = [q.copy() for q in state["_model"].params]
        return state

    def __setstate__(self, state):
        params = state.pop("_model", None)
        super().__setstate__(state)
        if params is not None:
            args = self._mlp_args
            if not backends.available()[args["backend"]][0]:
                fallback = _params.backend_name("backend", "auto")
                warnings.warn(f"backend {args['backend']!r}, which trained this estimator, is "
                              f"unavailable here: it predicts with {fallback!r}")
                args["backend"] = self.backend_ = fallback
            self._model = _build(args, params, 0)


def _build(args, params, seed):
    args = dict(args)
    model = MLP(args.pop("sizes"), seed=seed, **args)
    for mine, given in zip(model.params, params):
        mine[...] = given
    return model


class _Epochs:
    """Passes over ``(X, Y)`` in mini-batches, each one call of the model's epoch kernel
    (``fastmlp.training.EpochRunner``) in the row order scikit-learn's shuffle drew: the
    gather, steps and loss checks of an epoch run compiled, validation happens once."""

    def __init__(self, model, optimizer, X, Y, batch_size):
        X = model._X(X)
        self.n_rows = X.shape[0]
        self._runner = EpochRunner(model, X, model._Y(Y, self.n_rows), batch_size, optimizer,
                                   shuffle=False)
        self._sizes = [min(batch_size, self.n_rows - start)
                       for start in range(0, self.n_rows, batch_size)]

    def run(self, order=None):
        """One epoch, rows in ``order`` (or as they are); the loss averaged over rows."""
        runner = self._runner
        with np.errstate(over="ignore", invalid="ignore"):  # each loss is checked
            diverged = runner.run(1, None if order is None else order.reshape(1, -1))
        losses = runner.losses[0].tolist()
        if diverged >= 0:
            batch = diverged - (diverged == runner.batches)  # == batches: its update undone
            start = batch * runner.b
            what = (f"the training loss became {losses[batch]}" if diverged < runner.batches
                    else "the training loss became nan (the update made the parameters "
                         "non-finite)")
            raise ValueError(f"{what} (rows {start}..{start + self._sizes[batch] - 1} of an "
                             "epoch). The input data may contain large values and need to be "
                             "preprocessed, or learning_rate_init is too large.")
        total = 0.0
        for loss, size in zip(losses, self._sizes):
            total += loss * size
        return total / self.n_rows
