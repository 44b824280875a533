"""Comparison rows for the tools users would pick instead: scikit-learn and PyTorch (CPU).

One training step on the same networks and batches as the step benchmarks,
when the tool is installed (``pip install .[compare]``); otherwise a row says
it is not installed. Timed with the same ``timing.measure``.
"""
from __future__ import annotations

import numpy as np

from fastmlp.harness import timing, workloads

WORKLOADS = ("xor", "spiral", "digits", "mnist")


def _data(name, dtype):
    sizes, batch, _, output = workloads.NETWORKS[name]
    X, y = workloads._batch(sizes, batch, np.dtype(dtype), output)
    return sizes, X, y


def sklearn_fit(name, X, y):
    """One ``MLPClassifier.partial_fit`` pass over ``X`` in mini-batches of the workload's
    batch (one Adam step when ``X`` is one batch); a callable repeating it."""
    sizes, batch = workloads.NETWORKS[name][:2]
    model = sklearn_model(sizes, batch)
    model.partial_fit(X, y, classes=np.arange(max(2, sizes[-1])))
    return lambda: model.partial_fit(X, y)


def sklearn_model(sizes, batch, lr=1e-3, alpha=1e-4):
    """An ``MLPClassifier`` of ``sizes`` (ReLU, Adam, seed 0); ``alpha``: its L2 penalty."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=sizes[1:-1], solver="adam", batch_size=batch,
                         learning_rate_init=lr, alpha=alpha, random_state=0)


def sklearn_step(name, dtype="float32"):
    """``MLPClassifier.partial_fit`` on one batch with ``batch_size`` = the batch: one Adam step."""
    _, X, y = _data(name, dtype)
    return sklearn_fit(name, X, y)


def torch_fit(name, X, y):
    """A ``torch.nn.Sequential`` MLP trained by a callable running one epoch over ``X``:
    shuffled mini-batches of the workload's batch, each forward, loss (cross-entropy, or
    binary cross-entropy for one sigmoid output), backward and a step of the workload's
    optimizer (Adam, or RMSprop for MNIST), as fastmlp's step does."""
    sizes, batch, opt_name = workloads.NETWORKS[name][:3]
    return torch_trainer(sizes, X, y, batch, opt_name)[0]


def torch_trainer(sizes, X, y, batch, opt_name="adam", lr=1e-3):
    """``(epoch, net)``: a ``torch.nn.Sequential`` ReLU MLP of ``sizes`` in ``X``'s dtype and
    a callable training it one epoch over ``X`` in shuffled mini-batches of ``batch`` (one
    full-batch step when ``X`` is one batch), as PyTorch's tutorials write the loop."""
    import torch

    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    net = torch.nn.Sequential(*layers).to(getattr(torch, X.dtype.name))
    optimizer = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    opt = optimizer[opt_name](net.parameters(), lr=lr)
    Xt = torch.from_numpy(X)
    if sizes[-1] == 1:
        yt, loss_fn = torch.from_numpy(np.asarray(y, X.dtype).reshape(-1, 1)), \
            torch.nn.BCEWithLogitsLoss()
    else:
        yt, loss_fn = torch.from_numpy(np.asarray(y, np.int64)), torch.nn.CrossEntropyLoss()

    def step(Xb, yb):
        opt.zero_grad()
        loss_fn(net(Xb), yb).backward()
        opt.step()

    if len(X) <= batch:
        return (lambda: step(Xt, yt)), net

    def epoch():
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch):
            rows = order[start:start + batch]
            step(Xt[rows], yt[rows])
    return epoch, net


def torch_step(name, dtype="float32"):
    """One training step of ``torch_fit`` on the workload's batch."""
    _, X, y = _data(name, dtype)
    return torch_fit(name, X, y)


TOOLS = {"scikit-learn MLPClassifier": sklearn_step, "PyTorch CPU": torch_step}


def run(budget=0.25, names=WORKLOADS):
    """Rows: tool, workload, median seconds (or why it did not run)."""
    rows = []
    for tool, make in TOOLS.items():
        for name in names:
            sizes, batch = workloads.NETWORKS[name][:2]
            row = dict(tool=tool, workload=f"{name} {'-'.join(map(str, sizes))} b{batch} f32")
            rows.append(attempt(row, lambda: timing.measure(make(name), budget=budget)))
    return rows


def attempt(row, measure):
    """``row`` with the timings ``measure()`` returns, or with why there are none."""
    try:
        return dict(row, status="ok", **measure())
    except ImportError:
        return dict(row, status="not installed")
    except Exception as error:  # a tool's failure is a row, not a crashed report
        return dict(row, status=f"error: {type(error).__name__}: {error}")
