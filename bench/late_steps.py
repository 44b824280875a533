"""A converged network's training step against a new one's: denormal floats.

A network near convergence fills with numbers too small for float32's normal range (tiny
softmax probabilities, Adam's second moments, decayed dead weights); each operation on one
costs ~100 cycles unless the CPU flushes them, which the compiled backends' training
kernels ask for. This steps one digits 64-100-10 batch (Adam, float32, one thread) and
prints the time a step takes after 10, 100, ... steps, the late/early ratio and the count
of denormal parameters, for each backend given: near 1x where denormals are flushed, the
``numpy`` reference shows what they cost.

    .venv/bin/python bench/late_steps.py [--backends numpy,cython,numba] [--steps 10000]
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastmlp import MLP, backends, datasets, optim

CHECKPOINTS = (10, 100, 300, 1000, 3000, 10000, 30000)


def step_us(step, calls=200):
    started = time.perf_counter()
    for _ in range(calls):
        step()
    return 1e6 * (time.perf_counter() - started) / calls


def late_steps(backend, last):
    """(steps done, us a step, denormal parameters) at each checkpoint up to ``last``."""
    (X, y), _ = datasets.digits("float32")
    Y = np.eye(10, dtype=np.float32)[y]
    model = MLP([64, 100, 10], backend=backend, dtype="float32", l2=1e-4 / 32, seed=0)
    step, done, rows = model.make_step(X[:32], Y[:32], optim.Adam()), 0, []
    for checkpoint in (c for c in CHECKPOINTS if c <= last):
        while done < checkpoint:
            step()
            done += 1
        us = step_us(step)
        done += 200
        theta = model._theta
        tiny = int(np.sum((theta != 0) & (np.abs(theta) < np.finfo(theta.dtype).tiny)))
        rows.append((checkpoint, us, tiny))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(
        b for b in ("numpy", "cython", "numba") if backends.available()[b][0]))
    parser.add_argument("--steps", type=int, default=10000, help="the last checkpoint")
    args = parser.parse_args(argv)
    with threadpool_limits(1):
        for backend in args.backends.split(","):
            rows = late_steps(backend, args.steps)
            print(f"{backend}: " + ", ".join(f"after {n}: {us:.1f} us" for n, us, _ in rows)
                  + f"; late / early = {rows[-1][1] / rows[0][1]:.2f}x, "
                  f"denormal parameters at the end: {rows[-1][2]}")


if __name__ == "__main__":
    main()
