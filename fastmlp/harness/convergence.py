"""Convergence: every optimizer on XOR, spiral, digits (and MNIST when present), with thresholds.

The learning rates and epochs below were chosen so that each optimizer meets
the thresholds from the default seed; they are written here, and in the
report, so a reader can rerun any line with ``MLP.fit``.
"""
from __future__ import annotations

import time

import numpy as np

from fastmlp import MLP, backends, datasets, optim

#: Optimizer labels -> factory of an optimizer from a learning rate.
OPTIMIZERS = {
    "sgd": lambda lr: optim.SGD(lr),
    "momentum": lambda lr: optim.SGD(lr, momentum=0.9),
    "nesterov": lambda lr: optim.SGD(lr, momentum=0.9, nesterov=True),
    "rmsprop": lambda lr: optim.RMSprop(lr),
    "adam": lambda lr: optim.Adam(lr),
    "adagrad": lambda lr: optim.Adagrad(lr),
}

#: Data set -> network, threshold and training settings; ``lr`` per optimizer.
TASKS = {
    "spiral": dict(sizes=(2, 100, 3), metric="train accuracy", threshold=0.98, epochs=300,
                   batch_size=30,
                   lr=dict(sgd=0.5, momentum=0.05, nesterov=0.05, rmsprop=0.003, adam=0.01,
                           adagrad=0.3)),
    "digits": dict(sizes=(64, 100, 10), metric="test accuracy", threshold=0.97, epochs=40,
                   batch_size=32,
                   lr=dict(sgd=0.3, momentum=0.05, nesterov=0.05, rmsprop=0.001, adam=0.003,
                           adagrad=0.1)),
    "mnist": dict(sizes=(784, 512, 512, 10), metric="test accuracy", threshold=0.975, epochs=5,
                  batch_size=128,
                  lr=dict(sgd=0.1, momentum=0.01, nesterov=0.01, rmsprop=0.001, adam=0.001,
                          adagrad=0.01)),
}

#: XOR: 2-2-1 net (ReLU, and tanh for contrast), sigmoid output, full batch, float64;
#: success = all four points right after ``steps`` steps.
XOR = dict(sizes=(2, 2, 1), steps=1000, seeds=20, activations=("relu", "tanh"),
           lr=dict(sgd=0.5, momentum=0.1, nesterov=0.1, rmsprop=0.01, adam=0.03, adagrad=0.3))

#: Backend agreement: the same seeded fit on every backend, batch losses compared.
AGREEMENT = dict(sizes=(2, 100, 3), epochs=3, batch_size=30, lr=0.01,
                 rtol={"float64": 1e-9, "float32": 1e-4})


def quick_settings(task):
    """A cut-down copy of a task for ``--quick`` (thresholds then mean little)."""
    return dict(task, epochs=max(1, task["epochs"] // 30))


def load(name):
    """``((Xtr, ytr), (Xte, yte))`` for a data set name; FileNotFoundError for missing MNIST."""
    if name == "spiral":
        X, y = datasets.spiral()
        return (X, y), (X, y)
    if name == "digits":
        return datasets.digits()
    if name == "mnist":
        return datasets.mnist()
    raise ValueError(name)


def train(task_name, task, opt_name, backend, data, dtype="float32"):
    """One run: fit, then final figures and the epoch at which the target was met."""
    (Xtr, ytr), (Xte, yte) = data
    model = MLP(task["sizes"], backend=backend, dtype=dtype, seed=0)
    start = time.perf_counter()
    history = model.fit(Xtr, ytr, optimizer=OPTIMIZERS[opt_name](task["lr"][opt_name]),
                        epochs=task["epochs"], batch_size=task["batch_size"],
                        validation_data=(Xte, yte))
    seconds = time.perf_counter() - start
    frame = history.to_frame()
    column = "accuracy" if task["metric"].startswith("train") else "val_accuracy"
    reached = frame.index[frame[column] >= task["threshold"]]
    batches = -(-len(Xtr) // task["batch_size"])
    final = model.evaluate(Xtr, ytr)
    test = model.evaluate(Xte, yte)
    value = final["accuracy"] if column == "accuracy" else test["accuracy"]
    return dict(dataset=task_name, optimizer=opt_name, lr=task["lr"][opt_name],
                epochs=task["epochs"], batch_size=task["batch_size"], backend=backend,
                final_loss=final["loss"], train_accuracy=final["accuracy"],
                test_accuracy=test["accuracy"], metric=task["metric"],
                threshold=task["threshold"], passed=bool(value >= task["threshold"]),
                steps_to_target=int((reached[0] + 1) * batches) if len(reached) else None,
                seconds=seconds, epoch_loss=rounded(frame["loss"]),
                batch_losses=rounded(history.batch_losses))


def rounded(values):
    """Six significant digits: enough for a plot, and keeps convergence.json small."""
    return [float(f"{v:.6g}") for v in values]


def xor_success(opt_name, backend, activation="relu", settings=XOR):
    """Share of seeds from which the 2-2-1 net learns XOR within ``steps`` full-batch steps."""
    X, y = datasets.xor()
    wins = 0
    for seed in range(settings["seeds"]):
        model = MLP(settings["sizes"], activation=activation, output="sigmoid", backend=backend,
                    dtype="float64", seed=seed)
        step = model.make_step(X, y, OPTIMIZERS[opt_name](settings["lr"][opt_name]))
        for _ in range(settings["steps"]):
            step()
        wins += model.evaluate(X, y)["accuracy"] == 1.0
    return dict(activation=activation, optimizer=opt_name, lr=settings["lr"][opt_name],
                steps=settings["steps"],
                seeds=settings["seeds"], successes=int(wins),
                success_rate=wins / settings["seeds"], backend=backend)


def agreement(names, dtype, settings=AGREEMENT):
    """Batch-loss curves of one seeded fit on every backend, against ``numpy``'s."""
    X, y = datasets.spiral()
    curves = {}
    for name in names:
        model = MLP(settings["sizes"], backend=name, dtype=dtype, seed=0)
        history = model.fit(X, y, optimizer=optim.Adam(settings["lr"]),
                            epochs=settings["epochs"], batch_size=settings["batch_size"])
        curves[name] = np.array(history.batch_losses)
    ref, rtol = curves["numpy"], settings["rtol"][dtype]
    rows = []
    for name, curve in curves.items():
        err = float(np.max(np.abs(curve - ref) / np.abs(ref)))
        rows.append(dict(backend=name, dtype=dtype, steps=len(curve), max_rel_diff=err,
                         rtol=rtol, agree=bool(err <= rtol)))
    return rows


def available_for_agreement():
    return [n for n, (ok, _) in backends.available().items() if ok]


def fastest_backend():
    """The last available backend in registry order (slowest to fastest expected)."""
    return available_for_agreement()[-1]
