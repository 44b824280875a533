"""What ``MLP.fit`` costs per batch beyond its training step, side by side in one run.

For each workload and backend: the step alone (``make_step(X_batch, y_batch, opt)()``),
``fit`` per batch (a fit over many epochs divided by its batches: the step plus the
loop's Python), and ``fit`` with a callback overriding ``on_batch_end`` (which makes fit
call back into Python each batch). Min of interleaved rounds; ratios to the step.

    .venv/bin/python bench/fit_overhead.py [--backends numpy,cython,numba] [--rounds 7] [--only spiral]

Numba's first compile takes minutes: add it once its cache is warm.
"""
import argparse
import time

import numpy as np

from fastmlp import MLP, datasets, optim
from fastmlp.callbacks import Callback

XOR = (np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float), np.array([0, 1, 1, 0]))


def workloads():
    """name -> (sizes, output, batch size, X, y)."""
    spiral = datasets.spiral()
    (digits, _) = datasets.digits()
    return {"spiral 2-100-3 b30": ((2, 100, 3), "softmax", 30) + spiral,
            "spiral 2-100-3 b300": ((2, 100, 3), "softmax", 300) + spiral,
            "xor 2-2-1 b4": ((2, 2, 1), "sigmoid", 4) + XOR,
            "digits 64-100-10 b32": ((64, 100, 10), "softmax", 32) + digits}


class Batches(Callback):
    """The cheapest per-batch callback: counts batches."""

    def on_batch_end(self, batch, logs=None):
        self.seen = batch


def timers(sizes, output, batch, X, y, backend, budget=0.05):
    """Zero-argument timers returning seconds per batch: step, fit, fit with a callback."""
    model = MLP(sizes, output=output, backend=backend, seed=0)
    step = model.make_step(X[:batch], y[:batch], optim.Adam(1e-3))
    step()
    started = time.perf_counter()
    for _ in range(20):
        step()
    per_step = (time.perf_counter() - started) / 20
    batches = -(-len(X) // batch)
    epochs = max(3, int(budget / (per_step * batches)))
    calls = max(50, int(budget / per_step))

    def time_step():
        started = time.perf_counter()
        for _ in range(calls):
            step()
        return (time.perf_counter() - started) / calls

    def time_fit(callbacks=None):
        fresh = MLP(sizes, output=output, backend=backend, seed=0)
        started = time.perf_counter()
        fresh.fit(X, y, optimizer=optim.Adam(1e-3), epochs=epochs, batch_size=batch,
                  callbacks=callbacks)
        return (time.perf_counter() - started) / (epochs * batches)

    return {"step": time_step, "fit": time_fit, "fit+cb": lambda: time_fit([Batches()])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,cython")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", default="", help="workloads whose name contains this")
    args = parser.parse_args()
    print("| workload | backend | step us | fit/batch us | fit/step | fit+cb/batch us "
          "| fit+cb/step |")
    print("|---|---|---|---|---|---|---|")
    for name, (sizes, output, batch, X, y) in workloads().items():
        if args.only not in name:
            continue
        for backend in args.backends.split(","):
            clocks = timers(sizes, output, batch, X, y, backend)
            best = dict.fromkeys(clocks, np.inf)
            for _ in range(args.rounds):  # interleaved: drift hits every column alike
                for key, clock in clocks.items():
                    best[key] = min(best[key], clock())
            s, f, c = (best[k] * 1e6 for k in ("step", "fit", "fit+cb"))
            print(f"| {name} | {backend} | {s:.1f} | {f:.1f} | {f / s:.2f}x | {c:.1f} "
                  f"| {c / s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
