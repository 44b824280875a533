"""Training steps of the compiled backends against NumPy's, side by side in one process.

Times one network's ``make_step`` on each backend, interleaved (fastmlp.harness.timing),
and prints the median time per step and its ratio to NumPy's step; then the machine kind
and the path of each of the step's products. To compare two states of the code (e.g.
before and after a tuning change), run it alternately with ``PYTHONPATH`` pointing at
each tree (the ratio to NumPy in the same process is what compares).

    .venv/bin/python bench/step_ratios.py [--network digits] [--dtypes float32 float64]
"""
import argparse
import importlib
import json

import numpy as np

from fastmlp import backends
from fastmlp.backends import tuning
from fastmlp.harness import timing, workloads


def step_ratios(network, dtype, names, budget):
    """{backend: median seconds per step} for ``network`` in ``dtype``, interleaved."""
    sizes, batch, optimizer, output = workloads.NETWORKS[network]
    case = workloads.step_case("step", network, sizes, batch, dtype, optimizer, output)
    timers = {name: timing.Timer(case.make(importlib.import_module(backends.MODULES[name]),
                                           np.dtype(dtype)), budget) for name in names}
    timing.interleave(list(timers.values()))
    return {name: t.result()["median_s"] for name, t in timers.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--network", default="digits", choices=sorted(workloads.NETWORKS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--backends", nargs="+", default=["numba", "cython"])
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per backend")
    parser.add_argument("--json", action="store_true", help="one JSON line per dtype")
    args = parser.parse_args()
    names = ["numpy"] + [n for n in args.backends if n != "numpy"]
    describe = getattr(tuning, "describe", lambda: {"SMALL_GEMM": tuning.SMALL_GEMM})()
    for dtype in args.dtypes:
        times = step_ratios(args.network, dtype, names, args.budget)
        ratios = {n: times["numpy"] / times[n] for n in names}
        if args.json:
            print(json.dumps(dict(network=args.network, dtype=dtype, tuning=describe,
                                  us={n: t * 1e6 for n, t in times.items()}, over_numpy=ratios)))
            continue
        print(f"{args.network} {dtype}: " + ", ".join(
            f"{n} {times[n] * 1e6:.1f} us ({ratios[n]:.2f}x numpy)" for n in names))
    if not args.json:
        print("tuning:", describe)
        sizes, batch = workloads.NETWORKS[args.network][:2]
        print("paths of the step's products, by layer:", tuning.layer_paths(sizes, batch))


if __name__ == "__main__":
    main()
