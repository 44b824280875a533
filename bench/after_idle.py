"""Two-thread products right after a pause: how long an idle spell slows the next calls.

For each pause of ``--pauses`` seconds, ``--repeats`` times: sleep, then time ``--calls``
calls in a row of numpy.matmul and of each compiled backend's ``matmul_blocked`` at
256x784x512 float32, and print the median call of each try. On a machine whose idle
threads wake at once the rows are flat; on a VM whose idle vCPU halts, the first calls
after a long pause run slower (docs/performance.md, "Pauses"). The harness pauses before a
threaded turn (``timing.settle_seconds``): this shows what that pause costs.

    .venv/bin/python bench/after_idle.py [--pauses 0 0.002 0.01 0.05 0.25] [--calls 10]
"""
import argparse
import time

import fastmlp  # noqa: F401  (first: its thread settings precede NumPy's OpenBLAS)
import numpy as np  # noqa: I001

from fastmlp import backends, threads


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pauses", type=float, nargs="+", default=[0, 0.002, 0.01, 0.05, 0.25])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--backends", nargs="+", default=["numba", "cython"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    A, B = (rng.random(shape, dtype=np.float32) for shape in ((256, 784), (784, 512)))
    out = np.empty((256, 512), np.float32)
    kernels = {"numpy.matmul": lambda: np.matmul(A, B, out=out)}
    for name in args.backends:
        blocked = backends.get(name).matmul_blocked
        kernels[f"{name} matmul_blocked"] = lambda blocked=blocked: blocked(A, B, out)
    for kernel in kernels.values():
        kernel()  # compile, warm
    print("thread settings:", "; ".join(f"{n}={v} ({who})" for n, v, who in threads.settings()))
    print(f"median of {args.calls} calls after the pause, ms, one column per try")
    for pause in args.pauses:
        for name, kernel in kernels.items():
            medians = []
            for _ in range(args.repeats):
                time.sleep(pause)
                calls = []
                for _ in range(args.calls):
                    t0 = time.perf_counter()
                    kernel()
                    calls.append(time.perf_counter() - t0)
                medians.append(np.median(calls) * 1e3)
            print(f"pause {pause:6.3f} s  {name:>22}: " + " ".join(f"{m:6.2f}" for m in medians),
                  flush=True)


if __name__ == "__main__":
    main()
