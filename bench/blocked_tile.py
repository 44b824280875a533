"""The own blocked product against numpy.matmul, with the register tile of this machine kind.

Times ``matmul_blocked`` of each compiled backend and ``numpy.matmul`` at 256x784x512
float32 in interleaved rounds of ``--number`` calls (a pause before each round, so that no
pool spins from the other's), and prints the tile (``tuning.TILE_BY_KIND``) and each
backend's share of numpy.matmul's speed: median and best over the rounds.
``FASTMLP_MACHINE_KIND=avx2`` compiles Numba's tile of that kind (the Cython extension has
the tile of the kind it was built for); ``OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1
OPENBLAS_NUM_THREADS=1`` compares one core's kernels, which the load of a shared machine
disturbs less than two threads that wait for each other.

    .venv/bin/python bench/blocked_tile.py [--rounds 15] [--number 10] [--backends numba cython]
"""
import argparse
import os
import time
import timeit

import fastmlp  # noqa: F401  (first: its thread settings precede NumPy's OpenBLAS)
import numpy as np  # noqa: I001

from fastmlp import backends
from fastmlp.backends import tuning


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--number", type=int, default=10)
    parser.add_argument("--backends", nargs="+", default=["numba", "cython"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((256, 784), np.float32), rng.standard_normal((784, 512), np.float32)
    out = np.empty((256, 512), np.float32)
    calls = {"numpy.matmul": lambda: np.matmul(A, B, out=out)}
    for name in args.backends:
        kernel = backends.get(name).raw.matmul_blocked
        kernel(A, B, out)  # compile, and check
        np.testing.assert_allclose(out, A @ B, rtol=1e-4, atol=1e-3)
        calls[name] = lambda kernel=kernel: kernel(A, B, out)
    print("kind", tuning.KIND, "tile", tuning.TILE_ROWS, "rows x", tuning.tile_columns(4),
          "float32 columns; load", os.getloadavg())
    times = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            time.sleep(0.3)
            times[name].append(timeit.timeit(call, number=args.number) / args.number)
    base = np.array(times["numpy.matmul"])
    for name, samples in times.items():
        samples = np.array(samples)
        print(f"{name:>14}: median {np.median(samples) * 1e3:.3f} ms, best "
              f"{samples.min() * 1e3:.3f} ms; share of numpy.matmul's speed: median of rounds "
              f"{np.median(base / samples):.0%}, best/best {base.min() / samples.min():.0%}")
    print("load", os.getloadavg())


if __name__ == "__main__":
    main()
