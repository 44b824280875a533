"""Each own product path against BLAS, over the shapes tuning.gemm_path chooses it for.

Times, side by side in one run, ``matmul_path(A, B, out, path)`` (the backend's product
forced onto one path) against the same call forced onto BLAS, for both compiled backends
and both dtypes, interleaved; min of rounds. A ratio below 1 means the own path wins. The
shapes are those of the table's rules on some machine kind (``tuning.BY_KIND``), and the
steps' products (spiral, digits, XOR). Prints the machine kind and OpenBLAS's build first.

    .venv/bin/python bench/product_paths.py [--rounds 7] [--number 500] [--backends numba cython]
"""
import argparse
import timeit

import numpy as np
from threadpoolctl import threadpool_info

from fastmlp import backends
from fastmlp.backends import tuning

LOOP, NARROW_K, NARROW_N, BLAS = (tuning.GEMM_PATHS.index(p) for p in
                                  ("loop", "narrow_k", "narrow_n", "blas"))
#: (path, m, k, n, A transposed, B transposed): below TINY_GEMM (the tiny loop), the
#: narrow-k and narrow-n rules, and below SMALL_GEMM (the i-k-j loop).
SHAPES = [
    ("tiny", LOOP, 8, 8, 8, False, False), ("tiny", LOOP, 16, 4, 12, False, False),
    ("tiny", LOOP, 12, 12, 6, False, True), ("tiny", LOOP, 4, 2, 100, False, False),
    ("narrow_k", NARROW_K, 300, 2, 100, False, False),
    ("narrow_k", NARROW_K, 300, 3, 100, False, True),
    ("narrow_k", NARROW_K, 32, 4, 64, False, False),
    ("narrow_k", NARROW_K, 1000, 4, 100, False, False),
    ("narrow_n", NARROW_N, 300, 100, 3, False, False),
    ("narrow_n", NARROW_N, 100, 300, 3, True, False),
    ("narrow_n", NARROW_N, 1000, 85, 3, False, False),
    ("narrow_n", NARROW_N, 64, 100, 4, False, False),
    ("loop", LOOP, 32, 100, 10, False, False), ("loop", LOOP, 100, 32, 10, True, False),
    ("loop", LOOP, 2, 300, 100, True, False), ("loop", LOOP, 16, 100, 20, False, False),
    ("loop", LOOP, 32, 32, 32, False, False), ("loop", LOOP, 8, 64, 100, False, False),
    ("loop", LOOP, 64, 8, 100, False, False), ("loop", LOOP, 32, 8, 200, False, False),
]


def operands(m, k, n, trans_a, trans_b, dtype):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    return (A.T if trans_a else A), (B.T if trans_b else B), np.empty((m, n), dtype)


def best_of(calls, rounds, number):
    """Min time per call of each of ``calls``, over ``rounds`` interleaved rounds."""
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, call in enumerate(calls):
            best[i] = min(best[i], timeit.timeit(call, number=number) / number)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=500)
    parser.add_argument("--backends", nargs="+", default=["numba", "cython"])
    args = parser.parse_args()
    kernels = {name: backends.get(name).raw.matmul_path for name in args.backends}
    print("tuning:", tuning.describe())
    for info in threadpool_info():
        print("BLAS:", {k: info.get(k) for k in ("internal_api", "version", "architecture",
                                                  "filepath")})
    print(f"{'rule':>9} {'shape':>16} {'dtype':>8} {'chosen':>9} "
          + " ".join(f"{b + ' path/blas us':>22} {'ratio':>6}" for b in kernels))
    for rule, path, m, k, n, trans_a, trans_b in SHAPES:
        for dtype in ("float32", "float64"):
            A, B, out = operands(m, k, n, trans_a, trans_b, dtype)
            calls = []
            for kernel in kernels.values():
                for p in (path, BLAS):
                    kernel(A, B, out, p)  # compile, and check against NumPy
                    np.testing.assert_allclose(out, A @ B, rtol=1e-4, atol=1e-4)
                    calls.append(lambda kernel=kernel, p=p: kernel(A, B, out, p))
            times = best_of(calls, args.rounds, args.number)
            chosen = tuning.GEMM_PATHS[tuning.gemm_path(m, k, n, trans_a, trans_b)]
            name = f"{m}x{k}x{n}" + ("^T" if trans_a else "") + (" B^T" if trans_b else "")
            cells = [f"{times[i] * 1e6:10.2f} {times[i + 1] * 1e6:11.2f} "
                     f"{times[i] / times[i + 1]:6.2f}" for i in range(0, len(times), 2)]
            print(f"{rule:>9} {name:>16} {dtype:>8} {chosen:>9} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
