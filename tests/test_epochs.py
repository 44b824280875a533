"""Epochs of training on the seed workloads (``harness.epochs``) and the other tools' rows."""
import numpy as np
import pytest

from fastmlp.harness import compare, epochs


@pytest.mark.parametrize("name, rows, features, steps", [
    ("xor", 4, 2, 1), ("spiral", 300, 2, 1), ("digits", 1347, 64, 43), ("mnist", 4000, 784, 16)])
def test_each_workload_has_its_data_set(name, rows, features, steps):
    X, y = epochs.data(name)
    assert X.shape == (rows, features) and X.dtype == np.float32
    assert y.shape == (rows,) and y.dtype == np.int64
    assert epochs.steps_per_epoch(name) == steps


def test_unknown_workload_is_named():
    with pytest.raises(ValueError, match="unknown workload 'iris'"):
        epochs.data("iris")


def test_fastmlp_epoch_is_timed_over_several_epochs():
    result = epochs.fastmlp_epoch("xor", "numpy", budget=0.01)
    assert result["epochs"] >= 3 and result["rounds"] == result["epochs"]
    assert 0 < result["q1_s"] <= result["median_s"] <= result["q3_s"]


def test_rows_cover_every_backend_and_tool_and_say_why_not(monkeypatch):
    def missing(name, X, y):
        raise ImportError("no torch")

    def broken(name, X, y):
        raise RuntimeError("bad shapes")

    monkeypatch.setattr(epochs, "TOOLS", {"PyTorch CPU": missing, "scikit-learn": broken})
    monkeypatch.setattr(epochs.timing, "SETTLE_S", 0)
    rows = {r["tool"]: r for r in epochs.run(("xor",), budget=0.01)}
    assert rows["PyTorch CPU"]["status"] == "not installed"
    assert rows["scikit-learn"]["status"] == "error: RuntimeError: bad shapes"
    assert rows["fastmlp numpy"]["status"] == "ok" and rows["fastmlp numpy"]["steps"] == 1
    assert {f"fastmlp {b}" for b in ("python", "numpy", "numba", "cython")} <= set(rows)


def test_sklearn_trains_an_epoch_of_the_binary_and_the_multiclass_shapes():
    for name in ("xor", "digits"):
        X, y = epochs.data(name)
        epoch = compare.sklearn_fit(name, X, y)  # one epoch already run (classes set)
        assert epoch().t_ == 2 * len(X)  # one model: every sample seen once per call
        assert epoch().t_ == 3 * len(X)
