"""Where the plain loop stops beating the other product paths: tuning.TINY_GEMM.

Times, side by side in one run, the plain loop every product below TINY_GEMM takes
(``gemm_loop``) against ``gemm``, which takes the shape's path at or above TINY_GEMM, for
shapes between 1024 and 2048 multiply-adds (the two values the backends once disagreed on).
Numba's kernels, each a three-argument call; min of interleaved rounds.

    .venv/bin/python bench/tiny_gemm.py
"""
import timeit

import numpy as np

from fastmlp.backends import tuning
from fastmlp.backends.numba import gemm

#: (m, k, n, A transposed, B transposed), each between 1024 and 2048 multiply-adds.
SHAPES = [(16, 4, 16, False, False), (32, 3, 16, False, False), (64, 8, 3, False, False),
          (100, 4, 4, False, False), (12, 12, 12, False, True), (16, 16, 6, True, False),
          (8, 16, 12, False, True), (24, 2, 40, False, False)]


def operands(m, k, n, trans_a, trans_b, dtype):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    return (A.T if trans_a else A), (B.T if trans_b else B), np.empty((m, n), dtype)


def main(rounds=15, number=2000):
    print(f"{'shape':>18} {'dtype':>8} {'path at >= TINY_GEMM':>21} {'loop us':>8} "
          f"{'path us':>8} {'loop/path':>9}")
    for m, k, n, trans_a, trans_b in SHAPES:
        for dtype in ("float32", "float64"):
            A, B, out = operands(m, k, n, trans_a, trans_b, dtype)
            path = tuning.gemm_path(m, k, n, trans_a, trans_b)
            loop = lambda: gemm.gemm_loop(A, B, out)  # noqa: E731
            other = lambda: gemm.gemm(A, B, out)  # noqa: E731  (takes `path` at this size)
            loop(), other()  # compile
            best = [float("inf"), float("inf")]
            for _ in range(rounds):  # interleaved: both see the same machine load
                best[0] = min(best[0], timeit.timeit(loop, number=number) / number)
                best[1] = min(best[1], timeit.timeit(other, number=number) / number)
            name = f"{m}x{k}x{n}" + ("^T" if trans_a else "") + (" B^T" if trans_b else "")
            print(f"{name:>18} {dtype:>8} {tuning.GEMM_PATHS[path]:>21} {best[0] * 1e6:8.2f} "
                  f"{best[1] * 1e6:8.2f} {best[0] / best[1]:9.2f}")


if __name__ == "__main__":
    main()
