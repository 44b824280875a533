"""Time per epoch of training on the seed workloads: ``MLP.fit`` on every backend, and the
same epoch in PyTorch CPU and scikit-learn.

An epoch is one pass over the workload's data set in shuffled mini-batches of its
step benchmark's batch (``workloads.NETWORKS``): XOR's 4 points in one batch of 4,
the spiral's 300 points in one batch of 300, the digits' 1,347 training images in
batches of 32, and the MNIST sample's 4,000 training images in batches of 256. Beyond
its steps, an epoch of ``fit`` gathers each batch, checks its loss and counts its
accuracy: what a user pays per step that the step benchmarks leave out.
"""
from __future__ import annotations

import time

import numpy as np

from fastmlp import MLP, datasets, optim
from fastmlp.harness import compare, speed, timing, workloads

#: The tools beside fastmlp's backends, as ``compare.TOOLS`` names them.
TOOLS = {"PyTorch CPU": compare.torch_fit, "scikit-learn MLPClassifier": compare.sklearn_fit}


def data(name):
    """``(X float32, y int64 labels)``: the training set of a seed workload."""
    if name == "xor":
        X, y = datasets.xor("float32")
        return X, y.ravel().astype(np.int64)
    if name == "spiral":
        return datasets.spiral(dtype="float32")
    if name == "digits":
        return datasets.digits("float32")[0]
    if name == "mnist":
        return datasets.mnist_sample()[0]
    raise ValueError(f"unknown workload {name!r}; expected one of {list(workloads.NETWORKS)}")


def steps_per_epoch(name):
    return -(-len(data(name)[1]) // workloads.NETWORKS[name][1])


def fastmlp_epoch(name, backend, budget=0.25, max_epochs=500):
    """Seconds per epoch of ``MLP.fit`` (median and quartiles over the epochs of one fit,
    after a first fit that compiles and builds the workspaces)."""
    sizes, batch, opt_name, output = workloads.NETWORKS[name]
    X, y = data(name)
    model = MLP(sizes, output=output, backend=backend, dtype="float32", seed=0)
    opt = optim.get(opt_name, lr=1e-3)
    warm = model.fit(X, y, optimizer=opt, epochs=2, batch_size=batch)  # compiles, if JIT
    epochs = int(np.clip(budget / warm.rows[1]["seconds"], 3, max_epochs))
    # the first epoch of a fit builds its steppers; the rest are the steady state
    seconds = [row["seconds"] for row in model.fit(X, y, optimizer=opt, epochs=epochs + 1,
                                                    batch_size=batch).rows[1:]]
    return dict(timing.summarize(seconds), epochs=epochs)


def tool_epoch(name, tool, budget=0.25):
    """Seconds per epoch of one of ``TOOLS`` (``timing.measure`` of the epoch)."""
    X, y = data(name)
    return timing.measure(TOOLS[tool](name, X, y), budget=budget, min_rounds=5)


#: The naive backend times an epoch only where one is estimated under this.
SLOW_EPOCH_S = 0.5


def run(names=tuple(workloads.NETWORKS), budget=0.25):
    """Rows: workload, tool (``fastmlp <backend>`` or a ``TOOLS`` name), seconds per epoch
    (or why it did not run)."""
    guard = speed.SlowBackendGuard(SLOW_EPOCH_S)
    status = speed.backend_status()
    rows = []
    for name in names:
        sizes, batch, opt_name = workloads.NETWORKS[name][:3]
        steps = steps_per_epoch(name)
        flops = steps * workloads.step_flops(sizes, batch, opt_name)
        for backend, (ok, _) in status.items():
            row = dict(workload=name, tool=f"fastmlp {backend}", steps=steps)
            if not ok:
                rows.append(dict(row, status="unavailable"))
            elif backend in speed.SLOW_BACKENDS and flops / guard.rate(backend) > guard.limit:
                rows.append(dict(row, status=speed.TOO_SLOW))
            else:
                rows.append(_attempt(row, lambda: fastmlp_epoch(name, backend, budget)))
        for tool in TOOLS:
            rows.append(_attempt(dict(workload=name, tool=tool, steps=steps),
                                 lambda: tool_epoch(name, tool, budget)))
    return rows


def _attempt(row, measure):
    time.sleep(timing.SETTLE_S)  # the threads of the tool timed before stop spinning
    return compare.attempt(row, measure)
