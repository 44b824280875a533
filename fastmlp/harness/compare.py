"""Comparison rows for the tools users would pick instead: scikit-learn and PyTorch (CPU).

One training step on the same networks and batches as the step benchmarks,
when the tool is installed (``pip install .[compare]``); otherwise a row says
it is not installed. Timed with the same ``timing.measure``.
"""
from __future__ import annotations

import numpy as np

from fastmlp.harness import timing, workloads

WORKLOADS = ("spiral", "digits", "mnist")


def _data(name, dtype):
    sizes, batch, _, output = workloads.NETWORKS[name]
    X, y = workloads._batch(sizes, batch, np.dtype(dtype), output)
    return sizes, X, y


def sklearn_step(name, dtype="float32"):
    """``MLPClassifier.partial_fit`` on one batch with ``batch_size`` = the batch: one Adam step."""
    from sklearn.neural_network import MLPClassifier

    sizes, X, y = _data(name, dtype)
    model = MLPClassifier(hidden_layer_sizes=sizes[1:-1], solver="adam", batch_size=len(X),
                          learning_rate_init=1e-3, random_state=0)
    classes = np.arange(sizes[-1])
    model.partial_fit(X, y, classes=classes)
    return lambda: model.partial_fit(X, y)


def torch_step(name, dtype="float32"):
    """A ``torch.nn.Sequential`` MLP: forward, cross-entropy, backward, and a step of the
    workload's optimizer (Adam, or RMSprop for MNIST), as fastmlp's step does."""
    import torch

    sizes, X, y = _data(name, dtype)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [torch.nn.Linear(a, b)] + ([torch.nn.ReLU()] if i < len(sizes) - 2 else [])
    net = torch.nn.Sequential(*layers).to(getattr(torch, dtype))
    optimizer = {"adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}
    opt = optimizer[workloads.NETWORKS[name][2]](net.parameters(), lr=1e-3)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(net(Xt), yt).backward()
        opt.step()
    return step


TOOLS = {"scikit-learn MLPClassifier": sklearn_step, "PyTorch CPU": torch_step}


def run(budget=0.25, names=WORKLOADS):
    """Rows: tool, workload, median seconds (or why it did not run)."""
    rows = []
    for tool, make in TOOLS.items():
        for name in names:
            sizes, batch = workloads.NETWORKS[name][:2]
            row = dict(tool=tool, workload=f"{name} {'-'.join(map(str, sizes))} b{batch} f32")
            try:
                row.update(status="ok", **timing.measure(make(name), budget=budget))
            except ImportError:
                row.update(status="not installed")
            except Exception as error:  # a tool's failure is a row, not a crashed report
                row.update(status=f"error: {type(error).__name__}: {error}")
            rows.append(row)
    return rows
