"""fastmlp.sklearn against scikit-learn: its estimator checks, and its own MLP as reference.

With ``dtype="float64"`` and the same ``random_state``, an estimator draws the same
initial weights and shuffles as scikit-learn's and takes the same steps, so their
weights agree to rounding: that is how the alpha scaling, the solvers, shuffling and
early stopping are tested. The checks run on the ``numpy`` and ``cython`` backends (neither
compiles anything at run time).
"""
import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn.neural_network as sk
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastmlp import backends
from fastmlp.sklearn import MLPClassifier, MLPRegressor
from fastmlp.sklearn._params import AUTO_BACKENDS

# Most fits here are short on purpose (one test asserts the warning itself).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

EXPECTED_FAILED = {
    "check_regressor_multioutput": "predictions have the estimator's dtype, float32 by "
                                   "default; the check wants float64",
}


# The reference backend, and the default one when it is built (tests/test_cython.py fails
# when it is not).
CHECKED_BACKENDS = ["numpy"] + [b for b in AUTO_BACKENDS[:1] if backends.available()[b][0]]


@parametrize_with_checks([cls(backend=name, random_state=0) for name in CHECKED_BACKENDS
                          for cls in (MLPClassifier, MLPRegressor)],
                         expected_failed_checks=lambda est: (
                             EXPECTED_FAILED if isinstance(est, MLPRegressor) else {}))
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- scikit-learn as reference

def _data(kind, n=240, seed=0):
    if kind == "regression":
        X, y = make_regression(n, 6, n_targets=1, noise=1.0, random_state=seed)
        return X, y / 50
    if kind == "multioutput":
        X, y = make_regression(n, 6, n_targets=3, noise=1.0, random_state=seed)
        return X, y / 50
    X, y = make_classification(n, 6, n_informative=4, n_classes=2 if kind == "binary" else 3,
                               random_state=seed)
    if kind == "multilabel":
        y = np.column_stack([y == 0, y == 1, X[:, 0] > 0]).astype(int)
    return X, y


def _pair(kind, **settings):
    """(fastmlp's, scikit-learn's) estimator for ``kind`` with the same settings."""
    settings = {**dict(hidden_layer_sizes=(7, 5), batch_size=40, max_iter=4, alpha=1e-2,
                       random_state=3), **settings}
    regression = kind in ("regression", "multioutput")
    ours = (MLPRegressor if regression else MLPClassifier)(backend="numpy", dtype="float64",
                                                           **settings)
    theirs = (sk.MLPRegressor if regression else sk.MLPClassifier)(**settings)
    return ours, theirs


def _assert_same_weights(ours, theirs, rtol=1e-9):
    for mine, reference in zip(ours.coefs_ + ours.intercepts_,
                               theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, reference, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression",
                                  "multioutput"])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_same_steps_as_scikit_learn(kind, solver):
    X, y = _data(kind)
    ours, theirs = _pair(kind, solver=solver, activation="tanh", learning_rate_init=0.01)
    ours.fit(X, y)
    theirs.fit(X, y)
    _assert_same_weights(ours, theirs)
    assert ours.t_ == theirs.t_ and ours.n_iter_ == theirs.n_iter_ == 4
    assert ours.out_activation_ == theirs.out_activation_
    if kind != "multioutput":  # scikit-learn's reported loss averages the outputs then
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    method = "predict_proba" if hasattr(ours, "predict_proba") else "predict"
    np.testing.assert_allclose(getattr(ours, method)(X[:50]), getattr(theirs, method)(X[:50]),
                               rtol=1e-9, atol=1e-12)


def test_nesterov_sgd_and_logistic_init_as_scikit_learn():
    X, y = _data("multiclass")
    ours, theirs = _pair("multiclass", solver="sgd", momentum=0.8, activation="logistic",
                         max_iter=3, learning_rate_init=0.1)
    ours.fit(X, y)
    theirs.fit(X, y)
    _assert_same_weights(ours, theirs)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_early_stopping_as_scikit_learn(kind):
    X, y = _data(kind, n=400)
    ours, theirs = _pair(kind, early_stopping=True, n_iter_no_change=3, max_iter=300,
                         learning_rate_init=0.05)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 300
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_)
    assert ours.best_validation_score_ == max(ours.validation_scores_)
    assert ours.best_loss_ is None
    _assert_same_weights(ours, theirs, rtol=1e-7)  # the best epoch's weights, restored


def test_early_stopping_stops_and_keeps_the_best_weights():
    X, y = _data("multiclass", n=600)
    clf = MLPClassifier(backend="numpy", early_stopping=True, n_iter_no_change=4, max_iter=500,
                        learning_rate_init=0.02, random_state=0).fit(X, y)
    assert clf.n_iter_ < 500
    assert len(clf.validation_scores_) == len(clf.loss_curve_) == clf.n_iter_
    best = int(np.argmax(clf.validation_scores_))
    assert clf.n_iter_ - 1 - best > clf.n_iter_no_change - 1  # stopped for lack of progress


def test_training_loss_stopping_rule():
    # tol larger than any improvement: every epoch after the first counts as none, so the
    # fit stops after exactly n_iter_no_change + 2 epochs, as scikit-learn's does.
    X, y = _data("multiclass")
    ours, theirs = _pair("multiclass", tol=10.0, n_iter_no_change=3, max_iter=100)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 5
    assert ours.best_loss_ == min(ours.loss_curve_)


def test_partial_fit_over_batches_matches_one_epoch_of_fit():
    X, y = _data("multiclass")
    settings = dict(backend="numpy", dtype="float64", batch_size=40, shuffle=False,
                    alpha=1e-2, random_state=1)
    with pytest.warns(ConvergenceWarning):
        whole = MLPClassifier(max_iter=1, **settings).fit(X, y)
    parts = MLPClassifier(**settings)
    for start in range(0, len(X), 40):
        parts.partial_fit(X[start:start + 40], y[start:start + 40], classes=np.unique(y))
    _assert_same_weights(parts, whole, rtol=1e-12)
    assert parts.t_ == whole.t_ == len(X)
    with pytest.raises(ValueError, match="classes must be passed"):
        MLPClassifier(backend="numpy").partial_fit(X, y)


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_partial_fit_as_scikit_learn_over_uneven_chunks(kind):
    # Each call's batch is its chunk, so alpha / batch_size changes from call to call.
    X, y = _data(kind)
    ours, theirs = _pair(kind, batch_size="auto")
    first = {"classes": np.unique(y)} if kind == "multiclass" else {}
    for start, stop in [(0, 50), (50, 80), (80, 150), (150, 240)]:
        for estimator in (ours, theirs):
            estimator.partial_fit(X[start:stop], y[start:stop], **first)
    _assert_same_weights(ours, theirs)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


@pytest.mark.parametrize("solver, rate", [("rmsprop", 0.01), ("adagrad", 0.1)])
@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_fastmlp_solvers_train(solver, rate, kind):
    X, y = _data(kind)
    ours, _ = _pair(kind, solver=solver, max_iter=60, learning_rate_init=rate)
    ours.fit(X, y)
    assert ours.loss_curve_[-1] < 0.5 * ours.loss_curve_[0]
    assert ours.score(X, y) > 0.8


def test_compiled_backends_train_as_the_reference():
    X, y = _data("multiclass")
    reference = MLPClassifier(backend="numpy", dtype="float64", max_iter=3, random_state=0)
    reference.fit(X, y)
    for name in backends.names():
        if name in ("numpy", "numba"):  # numba compiles for minutes: its tests cover it
            continue
        other = clone(reference).set_params(backend=name).fit(X, y)
        assert other.backend_ == name
        _assert_same_weights(other, reference, rtol=1e-8)


def test_auto_backend_is_the_fastest_available():
    X, y = _data("binary", n=60)
    clf = MLPClassifier(max_iter=1, hidden_layer_sizes=(3,))
    clf.fit(X, y)
    assert clf.backend_ == next(b for b in AUTO_BACKENDS if backends.available()[b][0])


# ---------------------------------------------------------------- scikit-learn's conventions

def test_pipeline_in_grid_search_on_digits():
    X, y = load_digits(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(backend="numpy", max_iter=20,
                                                         learning_rate_init=0.01,
                                                         random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(16,), (48,)],
                               "mlpclassifier__alpha": [1e-4, 1e-1]}, cv=3)
    grid.fit(X[:900], y[:900])
    assert len(grid.cv_results_["mean_test_score"]) == 4
    assert grid.best_score_ > 0.85
    assert grid.score(X[900:], y[900:]) > 0.85
    assert grid.best_estimator_[-1].coefs_[0].shape[0] == 64


def test_clone_and_set_params():
    X, y = _data("multiclass")
    clf = MLPClassifier(hidden_layer_sizes=(5,), backend="numpy", max_iter=2, random_state=0)
    clf.fit(X, y)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params() and not hasattr(copy, "coefs_")
    copy.set_params(hidden_layer_sizes=(9, 4), activation="tanh")
    assert copy.get_params()["hidden_layer_sizes"] == (9, 4)
    copy.fit(X, y)
    assert [W.shape for W in copy.coefs_] == [(6, 9), (9, 4), (4, 3)]
    assert [W.shape for W in clf.coefs_] == [(6, 5), (5, 3)]


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array(["no", "yes"]),
                                    np.array([False, True]), np.array([-3, 10, 7])],
                         ids=["strings", "binary-strings", "bools", "ints"])
def test_labels_round_trip(labels):
    X, y = _data("binary" if len(labels) == 2 else "multiclass")
    y = labels[y]
    clf = MLPClassifier(backend="numpy", max_iter=50, learning_rate_init=0.02,
                        random_state=0).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(labels))
    predicted = clf.predict(X)
    assert predicted.dtype == y.dtype and set(predicted) <= set(labels)
    assert clf.score(X, y) > 0.8
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], predicted)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[:5])), proba[:5], rtol=1e-5)


def test_multilabel_and_multioutput_targets():
    X, Y = _data("multilabel")
    clf = MLPClassifier(backend="numpy", max_iter=30, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert clf.out_activation_ == "logistic"
    with pytest.raises(ValueError, match="Multioutput target data is not supported"):
        MLPClassifier(backend="numpy").fit(X, np.column_stack([Y[:, 0] * 2, Y[:, 1]]))
    X, Y = _data("multioutput")
    reg = MLPRegressor(backend="numpy", max_iter=30, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == Y.shape and reg.n_outputs_ == 3


def test_dataframe_gives_feature_names():
    X, y = _data("binary", n=80)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    clf = MLPClassifier(backend="numpy", max_iter=5, random_state=0)
    clf.fit(frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    assert clf.n_features_in_ == 6
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(frame.rename(columns={"f0": "other"}))


def test_pickle_and_joblib_round_trip():
    X, y = _data("multiclass")
    clf = MLPClassifier(backend="numpy", max_iter=20, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    for other in (again, loaded):
        np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
        assert other.get_params() == clf.get_params()
    loaded.partial_fit(X, y)  # training continues, optimizer state included
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(loaded.coefs_[0], clf.coefs_[0])


def test_unpickled_where_its_backend_is_missing(monkeypatch):
    X, y = _data("binary")
    clf = MLPClassifier(backend="python", max_iter=2, hidden_layer_sizes=(4,), random_state=0)
    clf.fit(X, y)
    status = {**backends.available(), "python": (False, "not built here")}
    monkeypatch.setattr(backends, "available", lambda: status)
    with pytest.warns(UserWarning, match="backend 'python'.* unavailable here"):
        loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.backend_ == next(b for b in AUTO_BACKENDS if status[b][0])
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-5)


def test_verbose_prints_as_scikit_learn(capsys):
    X, y = _data("multiclass")
    MLPClassifier(backend="numpy", max_iter=30, tol=10.0, n_iter_no_change=2, verbose=True,
                  random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ") and len(lines) == 5
    assert lines[-1] == ("Training loss did not improve more than tol=10.000000 for 2 "
                         "consecutive epochs. Stopping.")


def test_warm_start_continues_from_the_fitted_weights():
    X, y = _data("multiclass")
    clf = MLPClassifier(backend="numpy", max_iter=5, warm_start=True, random_state=0)
    clf.fit(X, y)
    first = list(clf.loss_curve_)
    clf.fit(X, y)
    assert len(clf.loss_curve_) == 10 and clf.n_iter_ == 5 and clf.t_ == 10 * len(X)
    assert clf.loss_curve_[5] < first[0]
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y < 2], y[y < 2])


def test_dropout_and_l1():
    X, y = _data("multiclass")
    settings = dict(backend="numpy", max_iter=10, batch_size=20, learning_rate_init=0.01,
                    random_state=0)
    plain, dropped, again, sparse = (MLPClassifier(dropout=dropout, l1=l1, **settings).fit(X, y)
                                     for dropout, l1 in [(0, 0), (0.5, 0), (0.5, 0), (0, 0.01)])
    assert not np.allclose(plain.coefs_[0], dropped.coefs_[0])
    np.testing.assert_array_equal(again.coefs_[0], dropped.coefs_[0])  # seeded masks
    assert np.abs(sparse.coefs_[0]).sum() < 0.5 * np.abs(plain.coefs_[0]).sum()


@pytest.mark.parametrize("name, value, error, words", [
    ("solver", "newton", ValueError, "solver must be one of"),
    ("solver", "lbfgs", ValueError, "solver='lbfgs' is not available"),
    ("activation", "softplus", ValueError, "activation must be one of"),
    ("hidden_layer_sizes", (10, 0), ValueError, r"hidden_layer_sizes\[1\] must be >= 1"),
    ("hidden_layer_sizes", "wide", TypeError, r"hidden_layer_sizes\[0\] must be an integer"),
    ("hidden_layer_sizes", 2.5, TypeError, "hidden_layer_sizes must be an int or a sequence"),
    ("alpha", -1.0, ValueError, "alpha must be in"),
    ("batch_size", 0, ValueError, "batch_size must be >= 1"),
    ("learning_rate_init", 0.0, ValueError, "learning_rate_init must be in"),
    ("momentum", 1.5, ValueError, "momentum must be in"),
    ("shuffle", "yes", TypeError, "shuffle must be True or False"),
    ("n_iter_no_change", 0, ValueError, "n_iter_no_change must be >= 1"),
    ("backend", "fortran", ValueError, "backend must be 'auto' or one of"),
    ("dtype", "float16", ValueError, "dtype must be"),
    ("dropout", 1.0, ValueError, "dropout must be in"),
])
def test_bad_parameters_fail_at_fit_naming_them(name, value, error, words):
    X, y = _data("binary", n=20)
    clf = MLPClassifier(**{name: value})  # scikit-learn's rule: __init__ only stores
    with pytest.raises(error, match=words):
        clf.fit(X, y)


def test_divergence_is_a_clear_error():
    X, y = _data("regression")
    reg = MLPRegressor(backend="numpy", solver="sgd", learning_rate_init=1e3, momentum=0.0,
                       random_state=0)
    with pytest.raises(ValueError, match="training loss became (nan|inf)"):
        reg.fit(X, y * 1e3)


def test_partial_fit_refuses_early_stopping_and_new_classes():
    X, y = _data("multiclass")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(backend="numpy", early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    clf = MLPClassifier(backend="numpy").partial_fit(X[y < 2], y[y < 2], classes=[0, 1])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y)
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, np.array(["a", "b"])[y % 2])
