"""Time to accuracy: seconds of training until a target is met, for every fastmlp backend,
PyTorch CPU and scikit-learn's ``MLPClassifier``, with the same network, Adam, learning
rate and batch size in every row of a task.

Each row trains a fresh model (seed 0) epoch by epoch, after an untimed warm-up epoch of
a throwaway model on two batches (JIT compiles and first-call set-ups are not the race).
After every epoch the same NumPy comparison of the row's predicted labels scores it,
outside the timed region; a row stops when it meets the target, after ``max_epochs``, or
once it has trained ``max_seconds``. The MNIST-shape task has no target: it trains a
fixed number of epochs on ``datasets.mnist_like`` (noise, nothing to learn) and its
figure is seconds per epoch.
"""
from __future__ import annotations

import os
import time
from functools import partial

import numpy as np

from fastmlp import MLP, callbacks, datasets, optim
from fastmlp.harness import compare, speed, timing, workloads

#: Task -> network, Adam's learning rate (``convergence.TASKS``'s), batch, the accuracy that
#: ends the race (None: a fixed number of epochs) and on which rows it is measured.
TASKS = {
    "digits": dict(sizes=(64, 100, 10), lr=0.003, batch=32, target=0.97, on="test",
                   max_epochs=60),
    "spiral": dict(sizes=(2, 100, 3), lr=0.01, batch=30, target=0.98, on="train",
                   max_epochs=400),
    "mnist": dict(sizes=(784, 512, 512, 10), lr=1e-3, batch=256, target=None, on="train",
                  max_epochs=3, rows=2048),
}
QUICK_TASKS = ("spiral", "digits")
#: Training seconds after which a row gives up ("did not reach in N s").
MAX_SECONDS = {"quick": 1.0, "full": 10.0}
TORCH_MISSING = "not installed: PyTorch (`pip install torch==2.13.0`, or `pip install .[compare]`)"


def data(name, task):
    """``((X, y) to train on, (X, y) to score)``, float32 features and int64 labels."""
    if name == "digits":
        return datasets.digits("float32")
    if name == "spiral":
        train = datasets.spiral(dtype="float32")
        return train, train
    train = datasets.mnist_like(task["rows"], seed=0, dtype="float32")
    return train, train


class Race:
    """The clock and the score of one row: ``after_epoch`` records (training seconds,
    accuracy), excluding its own time, and says whether the row is done."""

    def __init__(self, task, scored, max_seconds):
        self.task, self.scored, self.max_seconds = task, scored, max_seconds
        self.curve, self.excluded, self.started = [], 0.0, time.perf_counter()

    def after_epoch(self, predict):
        now = time.perf_counter()
        X, y = self.scored
        accuracy = float(np.mean(np.asarray(predict(X)).ravel() == y))
        self.curve.append((now - self.started - self.excluded, accuracy))
        self.excluded += time.perf_counter() - now
        target = self.task["target"]
        return ((target is not None and accuracy >= target) or self.curve[-1][0] >= self.max_seconds
                or len(self.curve) >= self.task["max_epochs"])


class _EpochEnd(callbacks.Callback):
    """Ends ``fit`` once its ``Race`` is done."""

    def __init__(self, race):
        super().__init__()
        self.race = race

    def on_epoch_end(self, epoch, logs=None):
        if self.race.after_epoch(self.model.predict):
            self.model.stop_training = True


def fastmlp_row(backend):
    """A row's runner: ``run(task, train, race)`` trains with ``MLP.fit``, one call."""
    def run(task, train, race):
        model = MLP(task["sizes"], backend=backend, dtype="float32", seed=0)
        model.fit(*train, optimizer=optim.Adam(task["lr"]), epochs=task["max_epochs"],
                  batch_size=task["batch"], callbacks=[_EpochEnd(race)])
    return run


def torch_row(task, train, race, threads=None):
    """PyTorch CPU, float32, ``threads`` intra-op threads (default: one per core),
    ``compare.torch_trainer``'s loop."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(0)
    X, y = train
    epoch, net = compare.torch_trainer(task["sizes"], X, y, task["batch"], "adam", task["lr"])

    def predict(Xs):
        with torch.no_grad():
            return net(torch.from_numpy(Xs)).argmax(1).numpy()

    try:
        while True:
            epoch()
            if race.after_epoch(predict):
                return
    finally:
        torch.set_num_threads(previous)


def sklearn_row(task, train, race):
    """``MLPClassifier.partial_fit``, one epoch a call, its Adam, ``alpha=0`` (no L2)."""
    model = compare.sklearn_model(task["sizes"], task["batch"], task["lr"], alpha=0.0)
    classes = np.arange(task["sizes"][-1])
    while True:
        model.partial_fit(*train, classes=classes)
        if race.after_epoch(model.predict):
            return


#: Rows beside the backends' (the names ``compare.TOOLS`` uses). PyTorch with one thread too:
#: on a loaded 2-core machine its two threads wait for each other at every operator.
TOOLS = {"PyTorch CPU": torch_row, "PyTorch CPU, 1 thread": partial(torch_row, threads=1),
         "scikit-learn MLPClassifier": sklearn_row}


def rows(status=None):
    """``(tool, runner or why it cannot run)``: every backend, then ``TOOLS``."""
    status = speed.backend_status() if status is None else status
    out = [(f"fastmlp {name}", fastmlp_row(name) if ok else f"unavailable: {why}")
           for name, (ok, why) in status.items()]
    return out + list(TOOLS.items())


def race(run, task, train, scored, max_seconds):
    """One row: a warm-up epoch on two batches' rows, then the race; its result as a dict."""
    rows, warm = 2 * task["batch"], dict(task, max_epochs=1)
    run(warm, (train[0][:rows], train[1][:rows]), Race(warm, scored, float("inf")))
    time.sleep(timing.SETTLE_S)  # the warm-up's BLAS threads stop spinning
    clock = Race(task, scored, max_seconds)
    run(task, train, clock)
    seconds, accuracy = clock.curve[-1]
    reached = task["target"] is None or accuracy >= task["target"]
    epochs = len(clock.curve)
    status = "ok" if reached else (
        f"did not reach {task['target']:.0%} in {epochs} epoch{'s' * (epochs != 1)}, "
        f"{seconds:.3g} s" + (" (capped)" if seconds >= max_seconds else ""))
    return dict(status=status, reached=reached, epochs=epochs, seconds=seconds,
                seconds_per_epoch=seconds / epochs, accuracy=accuracy,
                curve=[[round(s, 6), round(a, 4)] for s, a in clock.curve])


def run_task(name, quick=False, task=None, loaded=None, tools=None, max_seconds=None):
    """Rows of one task: ``tool``, ``status`` and, for rows that ran, ``race``'s figures.

    ``task``, ``loaded`` (``data``'s pair), ``tools`` (``rows()``'s pairs) and
    ``max_seconds`` override the defaults (tests use tiny ones).
    """
    task = TASKS[name] if task is None else task
    train, scored = data(name, task) if loaded is None else loaded
    max_seconds = MAX_SECONDS["quick" if quick else "full"] if max_seconds is None else max_seconds
    guard, out = speed.SlowBackendGuard(max_seconds), []
    flops = -(-len(train[1]) // task["batch"]) * workloads.step_flops(task["sizes"], task["batch"])
    for tool, run in rows() if tools is None else tools:
        row = dict(task=name, network="-".join(map(str, task["sizes"])), tool=tool,
                   lr=task["lr"], batch=task["batch"], target=task["target"], on=task["on"],
                   max_epochs=task["max_epochs"])
        backend = tool.removeprefix("fastmlp ")
        if isinstance(run, str):
            out.append(dict(row, status=run))
        elif backend in speed.SLOW_BACKENDS and flops / guard.rate(backend) > max_seconds:
            out.append(dict(row, status=f"{speed.TOO_SLOW}: an epoch estimated at "
                                        f"{flops / guard.rate(backend):.3g} s"))
        else:
            out.append(_attempt(row, lambda: race(run, task, train, scored, max_seconds)))
    return out


def _attempt(row, measure):
    try:
        return dict(row, **measure())
    except ImportError:
        return dict(row, status=TORCH_MISSING if row["tool"].startswith("PyTorch") else
                    "not installed")
    except Exception as error:  # a tool's failure is a row, not a crashed report
        return dict(row, status=f"error: {type(error).__name__}: {error}")


def jobs(quick):
    """``(task name, callable returning its rows)`` for ``fastmlp report``."""
    return [(name, lambda n=name: run_task(n, quick)) for name in
            (QUICK_TASKS if quick else tuple(TASKS))]


# ---------------------------------------------------------------- the report's section

#: Goals: the other tool's figure over the fastest fastmlp backend's, at least this.
GOALS = {name: {tool: 1.0 if name == "mnist" else 10.0 if tool.startswith("scikit") else 5.0
                for tool in TOOLS} for name in TASKS}


def _figure(row):
    """The figure a task compares: seconds to the target, or seconds per epoch."""
    return row["seconds_per_epoch"] if row["target"] is None else row["seconds"]


def ratios(results):
    """Lines: the fastest fastmlp backend against each tool of ``GOALS``, per task."""
    lines = []
    for name, rows in results.items():
        ours = [r for r in rows if r["tool"].startswith("fastmlp ") and r.get("reached")]
        if not ours:
            lines.append(f"{name}: no fastmlp backend reached the target")
            continue
        best = min(ours, key=_figure)
        mine = _figure(best)
        for tool, goal in GOALS.get(name, {}).items():
            other = next((r for r in rows if r["tool"] == tool), {"status": "not run"})
            head = f"{name}: {tool} / fastest fastmlp ({best['tool'][8:]})"
            if "seconds" not in other:
                lines.append(f"{head}: not measured ({other['status']})")
            elif other["reached"]:
                value = _figure(other) / mine
                verdict = "PASS" if value >= goal else "FAIL"
                lines.append(f"{head} = {value:.3g}x (goal >= {goal:g}x): {verdict}")
            else:  # it stopped short: its time so far bounds the ratio from below
                value = _figure(other) / mine
                verdict = "PASS" if value >= goal else "not measured"
                lines.append(f"{head} > {value:.3g}x ({tool} {other['status']}; goal >= "
                             f"{goal:g}x): {verdict}")
    return lines


def table(results):
    """One row per task and tool, as text cells."""
    from fastmlp.harness.tables import seconds

    out = []
    for rows in results.values():
        for r in rows:
            goal = (f"{r['on']} acc >= {r['target']:.0%}" if r["target"] is not None
                    else f"{r['max_epochs']} epochs")
            ran = "seconds" in r
            out.append({"task": f"{r['task']} {r['network']}", "tool": r["tool"], "goal": goal,
                        "lr": r["lr"], "batch": r["batch"], "epochs": r["epochs"] if ran else "-",
                        "seconds": seconds(r["seconds"]) if ran and r["reached"] else "-",
                        "per epoch": seconds(r["seconds_per_epoch"]) if ran else "-",
                        "accuracy": f"{r['accuracy']:.3f}" if ran else "-",
                        "status": r["status"]})
    return out


def markdown(results, out, quick):
    """The report's "Time to accuracy" section; writes ``time_to_accuracy.png`` into ``out``."""
    import pandas as pd

    from fastmlp.harness import plots, tables

    if not results:
        return ""
    figure = plots.time_to_accuracy(results, out / "time_to_accuracy.png")
    note = (f"_Quick mode: {', '.join(QUICK_TASKS)} only, each row capped at "
            f"{MAX_SECONDS['quick']:g} s of training._\n\n" if quick else "")
    return ("\n## Time to accuracy (one run, rows one after another)\n\n" + note +
            "Seconds of training until the target is met: a fresh model (seed 0) of the same "
            "network, Adam, learning rate and batch size in every row, float32, after an "
            "untimed warm-up on two batches; accuracy is scored after every epoch outside the "
            "timed region, the same way for every row. PyTorch: `nn.Sequential`, "
            "`torch.optim.Adam`, shuffled index batches, one thread per core (and one thread: "
            "on a loaded machine two threads wait for each other at every operator); "
            "scikit-learn: `MLPClassifier.partial_fit` per epoch, `alpha=0`. The MNIST-shape "
            "task trains a fixed number of epochs on `mnist_like` (random data): seconds per "
            "epoch.\n\n"
            + tables.markdown(pd.DataFrame(table(results))) + "\n\n```\n"
            + "\n".join(ratios(results)) + "\n```\n\n" + f"![time to accuracy]({figure})\n")
