"""scikit-learn estimators on fastmlp: drop-in ``MLPClassifier`` and ``MLPRegressor``.

``import fastmlp.sklearn`` explicitly: ``import fastmlp`` does not import scikit-learn.
Both pass ``sklearn.utils.estimator_checks`` (``tests/test_sklearn.py``).
"""
from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

from fastmlp.sklearn._base import BaseMLP

__all__ = ["MLPClassifier", "MLPRegressor"]

_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Widths of the hidden layers.
    activation : {'relu', 'logistic', 'tanh', 'identity'}, default='relu'
        Hidden activation.
    solver : {'adam', 'sgd', 'rmsprop', 'adagrad'}, default='adam'
        'adam' and 'sgd' (with ``momentum`` and ``nesterovs_momentum``) take the same steps
        as scikit-learn's; 'rmsprop' and 'adagrad' are fastmlp's (``torch.optim`` rules,
        with ``epsilon``). No 'lbfgs'.
    alpha : float, default=0.0001
        L2 penalty with scikit-learn's scaling: each mini-batch's loss gets
        ``0.5 * alpha * ||W||^2 / batch_size``; fastmlp's ``l2`` is ``alpha / batch_size``
        (scaled as the loss, see ``MLP``). One difference: scikit-learn divides by the rows
        of each batch, so an epoch's last, shorter batch gets a larger penalty there.
    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' is ``min(200, n_samples)``.
    learning_rate_init : float, default=0.001
        Step size (constant: scikit-learn's ``learning_rate='constant'``).
    max_iter : int, default=200
        Epochs at most.
    shuffle : bool, default=True
        Shuffle the rows every epoch, with scikit-learn's draws.
    random_state : int, RandomState or None, default=None
        Initial weights (scikit-learn's scheme and draws), shuffling, the early-stopping
        split, and the dropout seed.
    tol, n_iter_no_change : float, default=1e-4; int, default=10
        Stop when the training loss (or, with ``early_stopping``, the validation score) has
        not improved by ``tol`` for more than ``n_iter_no_change`` epochs in a row.
    verbose : bool, default=False
        Print the loss every epoch, as scikit-learn does.
    warm_start : bool, default=False
        Start ``fit`` from the fitted weights (with a new optimizer, as scikit-learn).
    momentum, nesterovs_momentum : float, default=0.9; bool, default=True
        For ``solver='sgd'``.
    early_stopping, validation_fraction : bool, default=False; float, default=0.1
        Hold out ``validation_fraction`` of the rows (stratified for two classes, as
        scikit-learn does), score them every epoch, and keep the best weights.
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's (``epsilon`` also for 'rmsprop' and 'adagrad').
    backend : str, default='auto'
        fastmlp backend; 'auto' is the fastest that imports here: 'cython', then 'numba',
        then 'numpy'. Numba compiles on first use (about 95 s on 2 cores, then cached on
        disk): pass ``backend`` to choose.
    dtype : {'float32', 'float64'}, default='float32'
        Precision of the weights and of every computation.
    dropout : float, default=0.0
        Inverted-dropout rate of the hidden layers while training.
    l1 : float, default=0.0
        L1 penalty ``l1 * ||W||_1`` added to each mini-batch's loss.
"""

_ATTRIBUTES = """
    Attributes
    ----------
    loss_, best_loss_ : float; float or None (None with early stopping)
    loss_curve_ : list of float, the training loss of each epoch
    validation_scores_, best_validation_score_ : list or None; float or None
    n_iter_ : int, epochs run by the last ``fit``; t_ : int, rows seen in total
    coefs_, intercepts_ : lists of arrays ``(fan_in, fan_out)`` and ``(fan_out,)``
    n_features_in_, feature_names_in_ : as in scikit-learn (names only for DataFrames)
    n_layers_, n_outputs_, out_activation_ : int, int, str
    backend_ : str, the backend the network trained on
"""


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = ("Multilayer perceptron classifier: scikit-learn's ``MLPClassifier`` on fastmlp.\n"
               "\n    Minimises the log-loss (softmax for several classes, logistic for two and\n"
               "    for multi-label targets).\n" + _PARAMETERS + _ATTRIBUTES
               + "    classes_ : ndarray, the class labels (any labels: strings, ints, bools)\n")

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype, order="C", reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            check_classification_targets(y)
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        elif self.warm_start and not incremental:
            classes = unique_labels(y)
            if set(classes) != set(self.classes_):
                raise ValueError("warm_start can only be used where `y` has the same classes "
                                 f"as in the previous call to fit. Previously got "
                                 f"{self.classes_}, `y` has {classes}")
        return X, self._one_hot(y, dtype)

    def _one_hot(self, y, dtype):
        """``y`` as the network's targets: one-hot rows, or one 0/1 column for two classes.
        (LabelBinarizer.transform, which costs milliseconds, for multi-label targets only.)"""
        if y.ndim == 2:
            return self._label_binarizer.transform(y).astype(dtype)
        try:
            codes = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
            unknown = (self.classes_[codes] != y).any()
        except TypeError:  # labels that do not compare with classes_ (strings and numbers)
            codes, unknown = None, True
        if unknown:
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {unique_labels(y)}.")
        if len(self.classes_) <= 2:  # one logistic output, 1 for the second class
            return codes.reshape(-1, 1).astype(dtype)
        return np.eye(len(self.classes_), dtype=dtype)[codes]

    def _output_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self, Y):
        # scikit-learn's rule, which its docs put as "except multi-label": by then its
        # multiclass targets are one-hot rows, so only a binary split is stratified.
        return Y if Y.shape[1] == 1 else None

    def _scored_targets(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _score_rows(self, X, y):
        return accuracy_score(y, self._labels(self._model.forward(X)))

    def _labels(self, P):
        return self._label_binarizer.inverse_transform(P.ravel() if P.shape[1] == 1 else P)

    def partial_fit(self, X, y, classes=None):
        """One epoch over ``(X, y)``; ``classes`` (every label to expect) on the first call."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            multilabel = type_of_target(y).startswith("multilabel")
            self._label_binarizer = LabelBinarizer().fit(y if multilabel else classes)
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Class labels, ``(n_samples,)`` (``(n_samples, n_classes)`` for multi-label)."""
        return self._labels(self._outputs(X))

    def predict_proba(self, X):
        """Class probabilities, ``(n_samples, n_classes)``, columns in ``classes_`` order."""
        P = self._outputs(X)
        return np.hstack([1 - P, P]) if self.n_outputs_ == 1 else P

    def predict_log_proba(self, X):
        """``log(predict_proba(X))``."""
        P = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(P, out=P)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = ("Multilayer perceptron regressor: scikit-learn's ``MLPRegressor`` on fastmlp.\n"
               "\n    Minimises half the squared error, summed over outputs, averaged over rows\n"
               "    (scikit-learn's ``loss='squared_error'``, its only loss here: there is no\n"
               "    ``loss`` parameter, so ``hidden_layer_sizes`` is the first positional one).\n"
               "    ``loss_curve_`` is that objective; with several outputs scikit-learn's\n"
               "    ``loss_curve_`` also averages the squared error over the outputs.\n"
               + _PARAMETERS + _ATTRIBUTES)

    def _validate_input(self, X, y, incremental, reset, dtype):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype,
                             order="C", reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, np.ascontiguousarray(y.reshape(len(y), -1), dtype=dtype)

    def _output_activation(self):
        return "identity"

    def _stratify(self, Y):
        return None

    def _scored_targets(self, Y):
        return Y.ravel() if Y.shape[1] == 1 else Y

    def _score_rows(self, X, y):
        P = self._model.forward(X)
        return r2_score(y, self._scored_targets(P)) if np.isfinite(P).all() else np.nan

    def partial_fit(self, X, y):
        """One epoch over ``(X, y)``."""
        return self._fit(X, y, incremental=True)

    def predict(self, X):
        """Predicted values, ``(n_samples,)``, or ``(n_samples, n_outputs)`` for several."""
        return self._scored_targets(self._outputs(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
