"""The compiled kernels and numpy.matmul called back to back in one loop, against each alone.

A user's program calls fastmlp's kernels and NumPy's with no pause between them; the thread
pools of each (OpenMP's, NumPy's OpenBLAS, SciPy's OpenBLAS) may still be spinning from the
last call when the next one starts. For each kernel at 256x784x512 float32 (and the MNIST
training step, 784-512-512-10 batch 256, RMSprop), this times, in one run and in turns:

- the kernel alone, and numpy.matmul alone, in loops of ``--calls`` calls (after a pause,
  so that no pool spins from the turn before), and
- the two in one loop, ``kernel(); numpy.matmul()``, with no pause, each call timed apart.

It prints each side's time alone and beside the other, and the share of its speed alone it
keeps (target >= 85%), and as a control the ``numpy`` backend's MNIST step beside
numpy.matmul (one pool, NumPy's: what the pairing itself costs, the two evicting each
other's data from the caches): the median over ``--turns`` turns of each turn's median
call, and of its fastest call (the noise of a shared machine only slows calls; a pool
spinning beside a kernel slows every call). Then the CPU time the idle threads of each
kernel's pools burn in the ``PAUSE_S`` after one call (spinning, measured by the process's
CPU clock: the load of other processes does not add to it), the thread pools
(threadpoolctl), Numba's threading layer and the thread settings in force.

    .venv/bin/python bench/back_to_back.py [--turns 7] [--calls 40] [--backends numba cython]

``FASTMLP_THREAD_DEFAULTS=0`` runs without the settings fastmlp makes at import
(``fastmlp.threads``), for the figures before them.
"""
import argparse
import os
import time

import fastmlp  # first: its thread settings must precede NumPy's OpenBLAS (fastmlp.threads)
import numpy as np  # noqa: I001

from fastmlp import backends, threads
from fastmlp.backends.contract import RELU
from fastmlp.harness.workloads import NETWORKS, step_case

M, K, N = 256, 784, 512
PAUSE_S = 0.3  # longer than any pool spins after its last call


def kernels(names, dt=np.float32):
    """name -> zero-argument callable, for each backend's kernels at M x K x N."""
    rng = np.random.default_rng(0)
    A, B, b = (rng.standard_normal(s).astype(dt) for s in ((M, K), (K, N), N))
    out = np.empty((M, N), dt)
    found = {}
    for name in names:
        raw = backends.get(name).raw
        if hasattr(raw, "matmul_blocked"):  # the compiled backends' own product
            found[f"{name} matmul_blocked"] = lambda raw=raw: raw.matmul_blocked(A, B, out)
        found[f"{name} linear_forward"] = lambda raw=raw: raw.linear_forward(A, B, b, RELU, out)
        found[f"{name} mnist step"] = mnist_step(name)
    found["numpy mnist step"] = mnist_step("numpy")  # the control: the pairing within NumPy
    C = np.empty((M, N), dt)
    return found, (lambda: np.matmul(A, B, out=C))


def mnist_step(backend):
    sizes, batch, opt, output = NETWORKS["mnist"]
    return step_case("step", "mnist", sizes, batch, "float32", opt, output).build(backend)


def timed_loop(calls, fns):
    """Seconds of each call of ``fns``, called in turn ``calls`` times after a pause, as
    ``(calls, len(fns))``."""
    time.sleep(PAUSE_S)
    for fn in fns:
        fn()
    times = np.empty((calls, len(fns)))
    for i in range(calls):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i, j] = time.perf_counter() - t0
    return times


def turn(fn, other, calls):
    """One turn: ``fn`` alone, ``other`` alone, then the two in one loop; (median, min) of
    each of the four columns (fn alone, other alone, fn beside, other beside)."""
    times = np.hstack([timed_loop(calls, [fn]), timed_loop(calls, [other]),
                       timed_loop(calls, [fn, other])])
    return np.median(times, axis=0), times.min(axis=0)


def idle_spin(fn, repeat=3):
    """CPU seconds this process burns in the ``PAUSE_S`` after a call of ``fn`` (median)."""
    spent = []
    for _ in range(repeat):
        fn()
        c0 = time.process_time()
        time.sleep(PAUSE_S)
        spent.append(time.process_time() - c0)
    return float(np.median(spent))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=7)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--backends", nargs="+", default=["numba", "cython"])
    parser.add_argument("--only", nargs="*", default=(), help="kernel names to keep (substrings)")
    args = parser.parse_args()
    found, matmul = kernels(args.backends)
    if args.only:
        found = {k: v for k, v in found.items() if any(s in k for s in args.only)}
    print("load:", os.getloadavg(), "fastmlp", fastmlp.__version__)
    print(f"{'':>24} {'median call, ms':^40}   {'fastest call, ms':^40}")
    print(f"{'kernel':>24}" + f" {'alone':>7} {'beside':>7} {'kept':>5} {'numpy':>6} "
          f"{'beside':>6} {'kept':>5}  " * 2)
    for name, fn in found.items():
        turns = [turn(fn, matmul, args.calls) for _ in range(args.turns)]
        line = f"{name:>24}"
        for stat in range(2):
            a, b, c, d = np.median([t[stat] for t in turns], axis=0) * 1e3
            line += f" {a:7.3f} {c:7.3f} {a / c:5.0%} {b:6.3f} {d:6.3f} {b / d:5.0%}  "
        print(line, flush=True)
    print("load:", os.getloadavg())
    print(f"CPU ms burnt by idle threads in the {PAUSE_S:g} s after one call:")
    for name, fn in dict(found, **{"numpy.matmul": matmul}).items():
        print(f"{name:>24} {idle_spin(fn) * 1e3:7.2f}")
    for line in threads.describe_lines():
        print(line)


if __name__ == "__main__":
    main()
