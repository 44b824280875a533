"""Time to accuracy (harness/time_to_accuracy.py) on tiny data with tiny targets."""
import sys

import numpy as np
import pytest

from fastmlp import datasets
from fastmlp.harness import speed
from fastmlp.harness import time_to_accuracy as tta

TINY = dict(sizes=(2, 16, 3), lr=0.05, batch=10, target=0.6, on="train", max_epochs=50)


@pytest.fixture(scope="module")
def spiral():
    data = datasets.spiral(n_per_class=20, dtype="float32")
    return data, data


def tools(*names):
    every = dict(tta.rows({"numpy": (True, ""), "gone": (False, "no compiler")}))
    return [(name, every[name]) for name in names]


def test_every_row_reaches_a_tiny_target_with_its_curve(spiral):
    rows = tta.run_task("spiral", task=TINY, loaded=spiral, max_seconds=30,
                        tools=tools("fastmlp numpy", "scikit-learn MLPClassifier"))
    assert [r["tool"] for r in rows] == ["fastmlp numpy", "scikit-learn MLPClassifier"]
    for row in rows:
        assert row["status"] == "ok" and row["reached"], row
        seconds, accuracy = np.array(row["curve"]).T
        assert len(seconds) == row["epochs"] >= 1 and (seconds > 0).all()
        assert (np.diff(seconds) > 0).all(), "training seconds must grow epoch by epoch"
        assert accuracy[-1] >= TINY["target"] > accuracy[:-1].max(initial=0)
        assert row["seconds"] == pytest.approx(seconds[-1], rel=1e-3)


def test_a_target_never_reached_is_reported_as_such(spiral):
    task = dict(TINY, target=1.01, max_epochs=3)
    [row] = tta.run_task("spiral", task=task, loaded=spiral, tools=tools("fastmlp numpy"),
                         max_seconds=30)
    assert not row["reached"] and row["epochs"] == 3
    assert row["status"].startswith("did not reach 101% in 3 epochs")
    assert "seconds" in row and tta.table({"spiral": [row]})[0]["seconds"] == "-"
    assert tta.ratios({"spiral": [row]}) == ["spiral: no fastmlp backend reached the target"]


def test_the_time_cap_ends_a_row(spiral):
    task = dict(TINY, target=1.01, max_epochs=10 ** 6)
    [row] = tta.run_task("spiral", task=task, loaded=spiral, tools=tools("fastmlp numpy"),
                         max_seconds=0.05)
    assert row["seconds"] >= 0.05 and "(capped)" in row["status"] and not row["reached"]


def test_a_fixed_number_of_epochs_gives_seconds_per_epoch(spiral):
    task = dict(TINY, target=None, max_epochs=2)
    [row] = tta.run_task("mnist", task=task, loaded=spiral, tools=tools("fastmlp numpy"))
    assert row["status"] == "ok" and row["epochs"] == 2
    assert row["seconds_per_epoch"] == pytest.approx(row["seconds"] / 2)
    assert tta.table({"mnist": [row]})[0]["goal"] == "2 epochs"


def test_without_torch_its_row_says_why(spiral, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    rows = tta.run_task("spiral", task=TINY, loaded=spiral,
                        tools=tools("fastmlp gone", "fastmlp numpy", "PyTorch CPU"))
    assert [r["status"] for r in rows][::2] == ["unavailable: no compiler", tta.TORCH_MISSING]
    text = tta.markdown({"spiral": rows}, tmp_path, quick=True)
    assert "torch==2.13.0" in text and "| fastmlp gone |" in text
    assert "PyTorch CPU / fastest fastmlp (numpy): not measured (not installed" in text
    assert (tmp_path / "time_to_accuracy.png").stat().st_size > 0


@pytest.mark.parametrize("tool", ["PyTorch CPU", "PyTorch CPU, 1 thread"])
def test_torch_row_reaches_a_tiny_target(spiral, tool):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    [row] = tta.run_task("spiral", task=TINY, loaded=spiral, tools=tools(tool), max_seconds=30)
    assert torch.get_num_threads() == threads  # the row restores the thread count
    assert row["status"] == "ok" and row["accuracy"] >= TINY["target"]


def test_python_backend_is_not_run_when_an_epoch_is_too_slow(spiral, monkeypatch):
    monkeypatch.setattr(speed.SlowBackendGuard, "rate", lambda self, backend: 1.0)
    [row] = tta.run_task("spiral", task=TINY, loaded=spiral, max_seconds=1,
                         tools=[("fastmlp python", tta.fastmlp_row("python"))])
    assert row["status"].startswith(speed.TOO_SLOW) and "epoch estimated" in row["status"]


def test_ratios_compare_the_fastest_backend_with_each_tool():
    def row(tool, seconds, reached=True):
        return dict(tool=tool, target=0.9, seconds=seconds, seconds_per_epoch=seconds / 10,
                    reached=reached, status="ok" if reached else "did not reach")

    lines = tta.ratios({"digits": [row("fastmlp numpy", 2.0), row("fastmlp numba", 0.1),
                                   row("PyTorch CPU", 0.6),
                                   row("scikit-learn MLPClassifier", 2.0, reached=False)]})
    assert lines == [
        "digits: PyTorch CPU / fastest fastmlp (numba) = 6x (goal >= 5x): PASS",
        "digits: PyTorch CPU, 1 thread / fastest fastmlp (numba): not measured (not run)",
        "digits: scikit-learn MLPClassifier / fastest fastmlp (numba) > 20x "
        "(scikit-learn MLPClassifier did not reach; goal >= 10x): PASS"]


def test_the_warm_up_is_one_epoch_on_two_batches(spiral):
    seen = []

    def loop(task, train, race):  # a tool's loop, as torch_row and sklearn_row run theirs
        while True:
            seen.append(len(train[1]))
            if race.after_epoch(lambda X: np.full(len(X), -1)):
                return

    [row] = tta.run_task("spiral", task=dict(TINY, max_epochs=4), loaded=spiral,
                         tools=[("a loop", loop)])
    assert seen == [2 * TINY["batch"]] + [len(spiral[0][1])] * 4 and row["epochs"] == 4
