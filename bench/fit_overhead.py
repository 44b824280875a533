"""What ``MLP.fit`` costs per batch beyond its training step, side by side in one run.

For each workload and backend (float32, Adam): the step alone (``make_step(X_batch,
y_batch, opt)()``), ``fit`` per batch (a fit over many epochs divided by its batches:
epochs in compiled calls, ``network_train_epoch``), ``fit`` with a callback overriding
``on_batch_end`` (which makes fit hand every batch back to Python), and a loop of one-epoch
``fit`` calls with the same optimizer (each call's set-up shows). Min of interleaved
rounds; ratios to the step, the target fit/step <= 1.15 for the compiled backends; then
through ``fit``, each backend's speed-up over ``numpy`` (targets: spiral >= 10x, XOR >= 30x).

    .venv/bin/python bench/fit_overhead.py [--backends numpy,numba,cython] [--rounds 5] \
        [--only spiral]

Numba's first compile takes minutes: run it once its cache is warm.
"""
import argparse
import time

import numpy as np

from fastmlp import MLP, datasets, optim
from fastmlp.callbacks import Callback

TARGET = 1.15  # fit per batch over the step, compiled backends
THROUGH_FIT = {"spiral 2-100-3 b30": 10, "spiral 2-100-3 b300": 10, "xor 2-2-1 b4": 30}


def workloads():
    """name -> (sizes, output, batch size, X, y), float32 as the harness's workloads."""
    spiral = datasets.spiral(dtype="float32")
    xor = datasets.xor("float32")
    digits = datasets.digits("float32")[0]
    mnist = datasets.mnist_like(2048, dtype="float32")
    return {"spiral 2-100-3 b30": ((2, 100, 3), "softmax", 30) + spiral,
            "spiral 2-100-3 b300": ((2, 100, 3), "softmax", 300) + spiral,
            "xor 2-2-1 b4": ((2, 2, 1), "sigmoid", 4, xor[0], xor[1].ravel()),
            "digits 64-100-10 b32": ((64, 100, 10), "softmax", 32) + digits,
            "mnist 784-512-512-10 b256": ((784, 512, 512, 10), "softmax", 256) + mnist}


class Batches(Callback):
    """The cheapest per-batch callback: counts batches."""

    def on_batch_end(self, batch, logs=None):
        self.seen = batch


def timers(sizes, output, batch, X, y, backend, budget):
    """Zero-argument timers returning seconds per batch: step, fit, fit with a callback."""
    model = MLP(sizes, output=output, backend=backend, seed=0)
    step = model.make_step(X[:batch], y[:batch], optim.Adam(1e-3))
    step()
    started = time.perf_counter()
    for _ in range(5):
        step()
    per_step = (time.perf_counter() - started) / 5
    batches = -(-len(X) // batch)
    epochs = max(2, int(budget / (per_step * batches)))
    calls = max(5, int(budget / per_step))

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

    looped, looped_opt = MLP(sizes, output=output, backend=backend, seed=0), optim.Adam(1e-3)
    looped.fit(X, y, optimizer=looped_opt, batch_size=batch)

    def time_looped_fits():  # a loop of one-epoch fits, as a user's own loop: each pays its set-up
        fits = max(3, int(budget / (per_step * batches)))
        started = time.perf_counter()
        for _ in range(fits):
            looped.fit(X, y, optimizer=looped_opt, batch_size=batch)
        return (time.perf_counter() - started) / (fits * batches)

    time_fit()  # compiles (Numba) and warms up
    return {"step": time_step, "fit": time_fit, "fit+cb": lambda: time_fit([Batches()]),
            "1-epoch fits": time_looped_fits}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="numpy,numba,cython")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.1, help="seconds a timing")
    parser.add_argument("--only", default="", help="workloads whose name contains this")
    args = parser.parse_args()
    print("| workload | backend | step us | fit/batch us | fit/step | <= 1.15x | "
          "fit+cb/batch us | fit+cb/step | 1-epoch fits/batch us | 1-epoch fits/step |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    fits = {}
    for name, (sizes, output, batch, X, y) in workloads().items():
        if args.only not in name:
            continue
        for backend in args.backends.split(","):
            clocks = timers(sizes, output, batch, X, y, backend, args.budget)
            best = dict.fromkeys(clocks, np.inf)
            for _ in range(args.rounds):  # interleaved: drift hits every column alike
                for key, clock in clocks.items():
                    best[key] = min(best[key], clock())
            s, f, c, e = (best[k] * 1e6 for k in ("step", "fit", "fit+cb", "1-epoch fits"))
            fits[name, backend] = f
            met = ("yes" if f / s <= TARGET else "NO") if backend in ("numba", "cython") else "-"
            print(f"| {name} | {backend} | {s:.1f} | {f:.1f} | {f / s:.2f}x | {met} | {c:.1f} "
                  f"| {c / s:.2f}x | {e:.1f} | {e / s:.2f}x |", flush=True)
    print("\n| workload | backend | fit/batch vs numpy's | target |\n|---|---|---|---|")
    for (name, backend), f in fits.items():
        if name in THROUGH_FIT and backend != "numpy" and (name, "numpy") in fits:
            ratio, target = fits[name, "numpy"] / f, THROUGH_FIT[name]
            print(f"| {name} | {backend} | {ratio:.1f}x | >= {target}x: "
                  f"{'yes' if ratio >= target else 'NO'} |")


if __name__ == "__main__":
    main()
