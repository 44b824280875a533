"""The Numba backend: every contract kernel compiled with ``@njit(cache=True)``.

Kernels follow ``fastmlp.backends.contract`` (see there for shapes and loops).
What this module adds: bias and activation fused into one pass after the
matrix product, one-pass losses and optimizer updates, and compiled network
kernels, so a training step is one call from Python whatever the depth. Narrow
products fold in their neighbours' passes (bias and ReLU forward, ReLU's
derivative into dX, db into dW), the softmax's exp is one vectorised loop, and a
network with one ReLU hidden layer between a few inputs and classes has a step
kernel of its own that works on activations stored units x samples
(``step_kernel``, ``narrow_pair_train_step``).
Importing compiles nothing; each kernel compiles on first use (and is cached
on disk for the next process).

Parallelism: only ``matmul_blocked`` uses ``prange`` (at 256x784x512 float32, two
threads: 80-112 GFLOP/s against numpy.matmul's 110-138 in the same runs; one thread:
52-62 against 77-85). The element-wise and optimizer kernels stay serial at every
size. Alone, a two-thread float32 ``rmsprop_update`` over 670k parameters takes
0.19 ms against 0.32 serial, but inside a training step its threads contend with
OpenBLAS's, which spin for a while after each product: the MNIST-shape RMSprop
step took 17-20 ms with it against 7.2 serial (10k parameters: 0.06 vs 0.013 ms
alone). So the serial threshold is "always". The BLAS products use OpenBLAS's
own threads.

``FASTMLP_FASTMATH=1`` compiles with ``fastmath=True`` (results then differ
from the NumPy reference in the last bits) and without the disk cache; the
default keeps IEEE semantics.
"""
import math
import os

import numpy as np
import numba
from numba import literally, njit, prange

from fastmlp.backends._numba_views import (STACK_ITEMS, TILE_ROWS, flat_view, matrix_view, pow2,
                                          stack_matrix, tile_columns, vector_tile)
from fastmlp.backends.contract import (A, ADAM, B, CROSS_ENTROPY, DROPOUT, DZ, FAN_IN, FAN_OUT,
                                       HIDDEN_ACT, IDENTITY, L1, L1_COEF, L2_COEF, LOSS, MSE, OUT,
                                       OUTPUT_ACT, RELU, RMSPROP, SGD, SIGMOID, SOFTMAX, TANH, U, W,
                                       Z)

FASTMATH = os.environ.get("FASTMLP_FASTMATH") == "1"
# Numba's disk cache is keyed on the bytecode, not on the compile flags: a fastmath build
# would be loaded by a later default run (and back), so only the default build is cached.
CACHE = not FASTMATH
# error_model="numpy": division follows IEEE (inf/nan) like the NumPy reference; the
# default "python" model checks every divisor for zero, a branch that stops vectorisation.
jit = njit(cache=CACHE, fastmath=FASTMATH, error_model="numpy")

#: Loop or BLAS, by shape (out = A @ B is m x n, inner dimension k). A BLAS call costs
#: ~0.2 us, and OpenBLAS is slow on narrow shapes. The spiral step's five products, min of
#: 10 interleaved rounds, us, float32 (float64), loop against np.dot:
#:   300x100x3   H @ W2      4-row dot loop on a stack copy of W2.T   5.2 (7.8) / 10.0 (24.0)
#:   100x300x3   H.T @ dZ    rank-4 loop into a stack out.T (3, 100)  5.1 (8.0) / 18.2 (36.4)
#:   300x3x100   dZ @ W2.T   one-pass narrow-k loop                   5.0 (9.3) /  7.0 (13.6)
#:   300x2x100   X @ W1      one-pass narrow-k loop                   3.3 (7.2) /  6.2 (12.1)
#:   2x300x100   X.T @ dZ    i-k-j loop (rank-1 updates)              4.6 (8.7) / 22.9 (21.0)
#: The narrow loops still win at ~256k multiply-adds (1000x85x3: 15.7 / 29.0 us, 128x512x4
#: transposed A: 10.6 / 35.2; n=1 ties with BLAS's gemv) and tie or lose at ~1M
#: (3000x100x3: 78 / 78; 1000x1000x1: 81 / 41), hence NARROW_GEMM. So: below TINY_GEMM the
#: plain loop whatever the layouts (8x8x8: 0.57 us, np.dot 0.70); k <= NARROW_K or
#: n < MIN_LOOP_COLUMNS the narrow loops, below NARROW_GEMM; other shapes with contiguous B
#: rows of at least MIN_LOOP_COLUMNS the i-k-j loop (it vectorises) below SMALL_GEMM; the
#: rest BLAS.
TINY_GEMM = 1024
SMALL_GEMM = 65536
NARROW_GEMM = 1 << 19
NARROW_K = 4
MIN_LOOP_COLUMNS = 8
#: Rows of B packed at once by the own blocked matmul (the packed block stays in L2).
PACK_ROWS = 256

# ---------------------------------------------------------------- matrix products


@jit
def _gemm_loop(A, B, out):
    """out = A @ B for any layouts (A or B may be a transposed view): i-k-j order."""
    out[:] = 0
    for i in range(A.shape[0]):
        for p in range(A.shape[1]):
            a = A[i, p]
            for j in range(B.shape[1]):
                out[i, j] += a * B[p, j]


@jit
def matmul_blas(A, B, out):
    np.dot(A, B, out)


# FMA contraction is allowed here only: results differ from np.dot's in the last bits anyway.
_mm_jit = njit(cache=CACHE, fastmath=FASTMATH or {"contract"}, error_model="numpy")


# The own blocked product, GotoBLAS-style, as the Cython backend's: B packed PACK_ROWS rows
# at a time into panels NR columns wide (zero-padded), the TILE_ROWS rows of A a tile needs
# packed interleaved on the stack, and each TILE_ROWS x NR tile summed in vector registers
# (``vector_tile``). At 256x784x512 float32 on 2 cores, the earlier loop kernel (tiles of 4
# rows accumulating in L1, B streamed for each) measured 0.56-0.68 of numpy.matmul, and
# 41 against OpenBLAS's 68 GFLOP/s on one core.


@jit
def _pack_panel(B, p0, depth, panel, columns, packed):
    """packed[panel, p, j] = B[p0 + p, panel * columns + j], zero past B's last column."""
    j0, zero = panel * columns, packed.dtype.type(0)
    width = min(columns, B.shape[1] - j0)
    for p in range(depth):
        start, row = (panel * depth + p) * columns, B[p0 + p]
        for j in range(width):
            packed[start + j] = row[j0 + j]
        for j in range(width, columns):
            packed[start + j] = zero


@jit
def _row_block_product(A, i0, p0, depth, packed, columns, out, accumulate):
    """out[i0:i0 + TILE_ROWS] (+)= A[i0:i0 + TILE_ROWS, p0:p0 + depth] @ the packed block,
    one panel at a time; tiles at the edges of out go through a scratch tile."""
    rows, n, zero = min(TILE_ROWS, out.shape[0] - i0), out.shape[1], out.dtype.type(0)
    a_pack = stack_matrix(out, depth, TILE_ROWS)
    for p in range(depth):
        for r in range(TILE_ROWS):
            a_pack[p, r] = A[i0 + r, p0 + p] if r < rows else zero
    flat, edge = flat_view(a_pack), stack_matrix(out, TILE_ROWS, columns)
    for panel in range((n + columns - 1) // columns):
        j0 = panel * columns
        cols = min(columns, n - j0)
        if rows == TILE_ROWS and cols == columns:
            vector_tile(flat, packed, panel * depth * columns, depth, out, i0, j0, accumulate)
            continue
        vector_tile(flat, packed, panel * depth * columns, depth, edge, 0, 0, False)
        for r in range(rows):
            for j in range(cols):
                out[i0 + r, j0 + j] = (out[i0 + r, j0 + j] if accumulate else zero) + edge[r, j]


@njit(cache=CACHE, parallel=True, fastmath=FASTMATH, error_model="numpy")
def matmul_blocked(A, B, out):
    """Own blocked product (see above): K in equal blocks of at most PACK_ROWS; each block
    of B packed by all threads, then blocks of TILE_ROWS rows of out in parallel."""
    m, k, n = A.shape[0], A.shape[1], B.shape[1]
    if k == 0:
        out[:] = 0
        return
    columns = tile_columns(out.itemsize)
    blocks = (k + PACK_ROWS - 1) // PACK_ROWS
    depth = (k + blocks - 1) // blocks
    panels = (n + columns - 1) // columns
    packed = np.empty(depth * panels * columns, out.dtype)
    for block in range(blocks):
        p0 = block * depth
        rows_of_b = min(depth, k - p0)
        for panel in prange(panels):
            _pack_panel(B, p0, rows_of_b, panel, columns, packed)
        for tile in prange((m + TILE_ROWS - 1) // TILE_ROWS):
            _row_block_product(A, tile * TILE_ROWS, p0, rows_of_b, packed, columns, out,
                               block > 0)


@_mm_jit
def _terms(k, a, b, j):
    """sum over q < k of a[q] * b[q][j], in order (k a compile-time constant: no loop)."""
    v = a[0] * b[0][j]
    if k > 1:
        v += a[1] * b[1][j]
    if k > 2:
        v += a[2] * b[2][j]
    if k > 3:
        v += a[3] * b[3][j]
    return v


@_mm_jit
def _narrow_k_fixed(A, B, out, bias, relu, gate, k):
    """``_narrow_k`` compiled for one k (``literally``: each k gets its own loop, with no
    branch or zero term in it; B's rows contiguous)."""
    literally(k)
    zero = out.dtype.type(0)
    b = (B[0], B[min(1, k - 1)], B[min(2, k - 1)], B[min(3, k - 1)])
    for i in range(A.shape[0]):
        o = out[i]
        a = (A[i, 0], A[i, min(1, k - 1)], A[i, min(2, k - 1)], A[i, min(3, k - 1)])
        if gate is not None:
            g = gate[i]
            for j in range(o.size):
                v = _terms(k, a, b, j)
                o[j] = v if g[j] > 0 else zero
        elif relu:
            for j in range(o.size):
                v = _terms(k, a, b, j)
                if bias is not None:
                    v += bias[j]
                o[j] = v if v > 0 else zero
        else:
            for j in range(o.size):
                v = _terms(k, a, b, j)
                if bias is not None:
                    v += bias[j]
                o[j] = v


@_mm_jit
def _narrow_k(A, B, out, bias, relu, gate):
    """out = A @ B (+ bias) for k <= NARROW_K, one pass over each row of out (the i-k-j loop
    makes k passes, each loading and storing the row). In the same pass, ReLU if ``relu``
    (a forward layer), or, given a ``gate`` (a ReLU output), the mask of ReLU's derivative
    (a backward dX). Against a separate pass, at 300x2x100 float32 with bias and ReLU:
    3.9 us vs 5.4; at 300x3x100 with ReLU's derivative: 4.6 vs 7.2."""
    if B.flags.c_contiguous:
        _narrow_k_rows(A, B, out, bias, relu, gate)
    else:  # a transposed B (dX = dZ @ W.T): its k short rows, copied to the stack
        rows = stack_matrix(out, B.shape[0], B.shape[1])
        for p in range(B.shape[0]):
            for j in range(B.shape[1]):
                rows[p, j] = B[p, j]
        _narrow_k_rows(A, rows, out, bias, relu, gate)


@_mm_jit
def _narrow_k_rows(A, B, out, bias, relu, gate):
    k = A.shape[1]
    if k == 1:
        _narrow_k_fixed(A, B, out, bias, relu, gate, 1)
    elif k == 2:
        _narrow_k_fixed(A, B, out, bias, relu, gate, 2)
    elif k == 3:
        _narrow_k_fixed(A, B, out, bias, relu, gate, 3)
    else:
        _narrow_k_fixed(A, B, out, bias, relu, gate, 4)


@_mm_jit
def _column4(X, i, q):
    return X[i, q], X[i + 1, q], X[i + 2, q], X[i + 3, q]


@_mm_jit
def _weight_grads_fixed(X, dZ, dW, db, k):
    """``_weight_grads`` for one fan-in k <= 4 (a literal, as in ``_narrow_k_fixed``)."""
    literally(k)
    sums = stack_matrix(dW, k + 1, dW.shape[1])  # on the stack: LLVM knows dZ is elsewhere
    sums[:] = 0
    g, db_sum = (sums[0], sums[min(1, k - 1)], sums[min(2, k - 1)], sums[min(3, k - 1)]), sums[k]
    m, i = X.shape[0], 0
    while i + 4 <= m:  # four rows of dZ a pass: one load and store of each sum per four
        z = (dZ[i], dZ[i + 1], dZ[i + 2], dZ[i + 3])
        x0, x1, x2, x3 = (_column4(X, i, 0), _column4(X, i, min(1, k - 1)),
                          _column4(X, i, min(2, k - 1)), _column4(X, i, min(3, k - 1)))
        for j in range(dZ.shape[1]):
            db_sum[j] += (z[0][j] + z[1][j]) + (z[2][j] + z[3][j])
            g[0][j] += _terms(4, x0, z, j)
            if k > 1:
                g[1][j] += _terms(4, x1, z, j)
            if k > 2:
                g[2][j] += _terms(4, x2, z, j)
            if k > 3:
                g[3][j] += _terms(4, x3, z, j)
        i += 4
    for r in range(i, m):
        for j in range(dZ.shape[1]):
            db_sum[j] += dZ[r, j]
            for q in range(k):
                sums[q, j] += X[r, q] * dZ[r, j]
    dW[:] = sums[:k]
    db[:] = db_sum


@_mm_jit
def _weight_grads(X, dZ, dW, db):
    """dW = X.T @ dZ and db = dZ's column sums for a narrow X (fan-in <= NARROW_K), in one
    pass over dZ. At 301 rows x 100 float32, fan-in 2: 3.5 us against 6.2 for the i-k-j
    product (two passes) and the sums (one more); fan-in 3: 4.8 against 29 (np.dot). The
    sums accumulate on the stack: into dW's rows, LLVM could not rule out that they overlap
    dZ, and the loop did not vectorise (18.7 us)."""
    k = X.shape[1]
    if k == 1:
        _weight_grads_fixed(X, dZ, dW, db, 1)
    elif k == 2:
        _weight_grads_fixed(X, dZ, dW, db, 2)
    elif k == 3:
        _weight_grads_fixed(X, dZ, dW, db, 3)
    else:
        _weight_grads_fixed(X, dZ, dW, db, 4)


@jit
def _transpose_into(M, out):
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            out[j, i] = M[i, j]


# Reassociation lets LLVM split each dot product's sum over vector lanes (a sum in order
# cannot vectorise); the results differ from BLAS's in the last bits, as any loop's do.
_dot_jit = njit(cache=CACHE, fastmath=FASTMATH or {"contract", "reassoc"}, error_model="numpy")


@_dot_jit
def _narrow_n(A, B, out):
    """out = A @ B for few columns n, A rows contiguous: B.T copied to the stack, then dot
    products of four rows of A with each of its rows (each row of B.T loaded serves four)."""
    m, k, n = A.shape[0], A.shape[1], B.shape[1]
    BT = stack_matrix(out, n, k)
    _transpose_into(B, BT)
    zero, i = out.dtype.type(0), 0
    while i + 4 <= m:
        a0, a1, a2, a3 = A[i], A[i + 1], A[i + 2], A[i + 3]
        for j in range(n):
            b = BT[j]
            c0 = c1 = c2 = c3 = zero
            for p in range(k):
                c0 += a0[p] * b[p]
                c1 += a1[p] * b[p]
                c2 += a2[p] * b[p]
                c3 += a3[p] * b[p]
            out[i, j], out[i + 1, j], out[i + 2, j], out[i + 3, j] = c0, c1, c2, c3
        i += 4
    for r in range(i, m):
        for j in range(n):
            c0 = zero
            for p in range(k):
                c0 += A[r, p] * BT[j, p]
            out[r, j] = c0


@_mm_jit
def _narrow_n_transposed_a(AT, B, out):
    """out = AT.T @ B for few columns n (AT (k, m) C-contiguous, as X in dW = X.T @ dZ):
    rank-4 updates of out.T, held on the stack, whose rows are long and contiguous."""
    outT = stack_matrix(out, out.shape[1], out.shape[0])
    outT[:] = 0
    k, p = AT.shape[0], 0
    while p + 4 <= k:  # four rows of AT a pass: one load and store of out.T per four updates
        a0, a1, a2, a3 = AT[p], AT[p + 1], AT[p + 2], AT[p + 3]
        for j in range(outT.shape[0]):
            b0, b1, b2, b3, o = B[p, j], B[p + 1, j], B[p + 2, j], B[p + 3, j], outT[j]
            for i in range(o.size):
                o[i] += b0 * a0[i] + b1 * a1[i] + b2 * a2[i] + b3 * a3[i]
        p += 4
    for q in range(p, k):
        a = AT[q]
        for j in range(outT.shape[0]):
            b, o = B[q, j], outT[j]
            for i in range(o.size):
                o[i] += b * a[i]
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = outT[j, i]


@jit
def _is_narrow_k(m, k, n):
    """Whether ``_narrow_k`` is the path for an (m, k) @ (k, n) product (and
    ``_weight_grads`` for an (k, m) @ (m, n) one: its k + 1 sums of n live on the stack)."""
    return TINY_GEMM <= m * k * n < NARROW_GEMM and k <= NARROW_K and n >= MIN_LOOP_COLUMNS \
        and (NARROW_K + 1) * n <= STACK_ITEMS


@jit
def _gemm(A, B, out):
    """The faster path for the shape (see TINY_GEMM and the figures above it)."""
    m, k, n = A.shape[0], A.shape[1], B.shape[1]
    size = m * k * n
    if size < TINY_GEMM:
        _gemm_loop(A, B, out)
    elif _is_narrow_k(m, k, n):
        _narrow_k(A, B, out, None, False, None)
    elif size < NARROW_GEMM and n < MIN_LOOP_COLUMNS and max(m, k) * n <= STACK_ITEMS:
        if A.flags.c_contiguous:
            _narrow_n(A, B, out)
        else:
            _narrow_n_transposed_a(A.T, B, out)
    elif size < SMALL_GEMM and n >= MIN_LOOP_COLUMNS and B.flags.c_contiguous:
        _gemm_loop(A, B, out)
    else:
        np.dot(A, B, out)


@jit
def matmul(A, B, out):
    _gemm(A, B, out)


# ---------------------------------------------------------------- activations
# The activation branch is taken once, outside each loop, so that LLVM can
# vectorise the loops (a branch per element would stop it). Element-wise loops
# run in place on ONE array: when the output is the same memory as an input,
# LLVM's runtime overlap check sends a two-array loop to its scalar fallback
# (measured 5-7x slower: relu backward at 300x100 float32, 35 us vs 6 us).


@jit
def _sigmoid(z):
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


@jit
def _into(source, out):
    """Make ``out`` hold ``source`` (nothing to do when they are the same memory)."""
    if source.ctypes.data != out.ctypes.data:
        out[:] = source


@jit
def _softmax_rows(out):
    for i in range(out.shape[0]):
        peak = out[i, 0]
        for j in range(out.shape[1]):
            peak = max(peak, out[i, j])
        total = 0.0
        for j in range(out.shape[1]):
            out[i, j] = math.exp(out[i, j] - peak)
            total += out[i, j]
        for j in range(out.shape[1]):
            out[i, j] /= total


@jit
def _activate(act, out):
    """out = f_act(out) in place."""
    if act == SOFTMAX:
        _softmax_rows(out)
        return
    flat = flat_view(out)
    zero = out.dtype.type(0)  # same type on both sides of the select: it vectorises
    if act == RELU:
        for i in range(flat.size):
            flat[i] = flat[i] if flat[i] > 0 else zero
    elif act == SIGMOID:
        for i in range(flat.size):
            flat[i] = _sigmoid(flat[i])
    elif act == TANH:
        for i in range(flat.size):
            flat[i] = math.tanh(flat[i])


@jit
def _bias_activation(out, b, act):
    """out = f_act(out + b) in place (b broadcast over rows), one pass for element-wise f."""
    rows, cols = out.shape
    zero = out.dtype.type(0)
    if act == RELU:
        for i in range(rows):
            for j in range(cols):
                v = out[i, j] + b[j]
                out[i, j] = v if v > 0 else zero
        return
    for i in range(rows):
        for j in range(cols):
            out[i, j] += b[j]
    if act != IDENTITY:
        _activate(act, out)


@jit
def activation_forward(act, Z, out):
    _into(Z, out)
    _activate(act, out)


@jit
def activation_backward(act, A, dA, out):
    _into(dA, out)
    if act == SOFTMAX:
        for i in range(A.shape[0]):
            s = 0.0
            for j in range(A.shape[1]):
                s += out[i, j] * A[i, j]
            for j in range(A.shape[1]):
                out[i, j] = A[i, j] * (out[i, j] - s)
        return
    a, o = flat_view(A), flat_view(out)
    zero = out.dtype.type(0)
    if act == RELU:
        for i in range(a.size):
            o[i] = o[i] if a[i] > 0 else zero
    elif act == SIGMOID:
        for i in range(a.size):
            o[i] = o[i] * a[i] * (1 - a[i])
    elif act == TANH:
        for i in range(a.size):
            o[i] = o[i] * (1 - a[i] * a[i])


@jit
def linear_forward(X, W, b, act, out):
    if act == RELU and _is_narrow_k(X.shape[0], X.shape[1], W.shape[1]):
        _narrow_k(X, W, out, b, True, None)  # product, bias and ReLU in one pass
        return
    _gemm(X, W, out)
    _bias_activation(out, b, act)


@jit
def _linear_backward(X, W, dZ, dW, db, dX, relu_out):
    """linear_backward; given ``relu_out`` (the ReLU output that fed this layer), dX also
    gets ReLU's derivative, in the product's pass where the shape allows."""
    if _is_narrow_k(dZ.shape[0], X.shape[1], dZ.shape[1]):  # a narrow X: dW has few rows
        _weight_grads(X, dZ, dW, db)
    else:
        _gemm(X.T, dZ, dW)
        db[:] = 0
        for i in range(dZ.shape[0]):
            for j in range(dZ.shape[1]):
                db[j] += dZ[i, j]
    if dX is None:
        return
    if relu_out is not None and _is_narrow_k(dZ.shape[0], dZ.shape[1], W.shape[0]):
        _narrow_k(dZ, W.T, dX, None, False, relu_out)
        return
    _gemm(dZ, W.T, dX)
    if relu_out is not None:
        activation_backward(RELU, relu_out, dX, dX)


@jit
def linear_backward(X, W, dZ, dW, db, dX):
    _linear_backward(X, W, dZ, dW, db, dX, None)


# ---------------------------------------------------------------- losses


#: exp(x) = 2**n * exp(r) with x = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite). LN2_HI has 16
#: significant bits, so n * LN2_HI is exact in float32 and float64 alike.
LN2_HI, LN2_LO = 0.693145751953125, 1.428606820309417232e-06
#: Taylor coefficients of exp(r), highest degree first: degree 13 is float64-accurate here.
EXP_TAYLOR = tuple(1 / math.factorial(d) for d in range(13, -1, -1))


@jit
def _exp_nonpositive(x):
    """x = exp(x) in place, for a 1-D array of entries <= 0 (or NaN): one loop that LLVM
    vectorises, where math.exp is a libm call per entry (in the spiral step's softmax,
    900 such calls took 7 of its 10 us)."""
    t = x.dtype.type
    log2e, hi, lo, half, zero = t(1 / math.log(2)), t(LN2_HI), t(LN2_LO), t(0.5), t(0)
    emin = t(-126) if x.itemsize == 4 else t(-1022)  # 2**n below this is not a normal number
    for i in range(x.size):
        v = x[i]
        n = np.floor(v * log2e + half)
        r = (v - n * hi) - n * lo
        p = t(EXP_TAYLOR[0])
        for c in EXP_TAYLOR[1:]:
            p = p * r + t(c)
        scale = pow2(n if n >= emin else emin)  # a NaN n is clamped too: p carries the NaN
        x[i] = zero if n < emin else p * scale


@jit
def _row_max(M, i):
    peak = M[i, 0]
    for j in range(1, M.shape[1]):
        peak = max(peak, M[i, j])
    return peak


@jit
def softmax_cross_entropy(Z, Y, P, dZ):
    n, k = Z.shape
    for i in range(n):  # shifted by the row's peak: exp cannot overflow
        peak = _row_max(Z, i)
        for j in range(k):
            P[i, j] = Z[i, j] - peak
    _exp_nonpositive(flat_view(P))
    loss, zero, one, inv_n = 0.0, Z.dtype.type(0), Z.dtype.type(1), Z.dtype.type(1 / n)
    for i in range(n):
        total = zero
        for j in range(k):
            total += P[i, j]
        lse, scale = _row_max(Z, i) + math.log(total), one / total  # a division a row, not k
        for j in range(k):
            P[i, j] *= scale
            loss += Y[i, j] * (lse - Z[i, j])
            dZ[i, j] = (P[i, j] - Y[i, j]) * inv_n
    return loss / n


@jit
def sigmoid_cross_entropy(Z, Y, P, dZ):
    size = Z.size
    loss = 0.0
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = Z[i, j]
            P[i, j] = _sigmoid(z)
            loss += max(z, 0) - z * Y[i, j] + math.log1p(math.exp(-abs(z)))
            dZ[i, j] = (P[i, j] - Y[i, j]) / size
    return loss / size


@jit
def _pointwise_loss(loss, P, Y, dP):
    """MSE or L1 over all entries, with the gradient into dP."""
    size = P.size
    total = 0.0
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            d = P[i, j] - Y[i, j]
            if loss == MSE:
                total += d * d
                dP[i, j] = 2 * d / size
            else:
                total += abs(d)
                dP[i, j] = np.sign(d) / size
    return total / size


@jit
def mse_loss(P, Y, dP):
    return _pointwise_loss(MSE, P, Y, dP)


@jit
def l1_loss(P, Y, dP):
    return _pointwise_loss(L1, P, Y, dP)


@jit
def output_loss(out_act, loss, Z, Y, P, dZ):
    if loss == CROSS_ENTROPY and out_act == SOFTMAX:
        return softmax_cross_entropy(Z, Y, P, dZ)
    if loss == CROSS_ENTROPY and out_act == SIGMOID:
        return sigmoid_cross_entropy(Z, Y, P, dZ)
    activation_forward(out_act, Z, P)
    value = _pointwise_loss(loss, P, Y, dZ)
    activation_backward(out_act, P, dZ, dZ)
    return value


@jit
def penalty(W, l1, l2, dW):
    value = 0.0
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            w = W[i, j]
            value += l1 * abs(w) + 0.5 * l2 * w * w
            dW[i, j] += l1 * np.sign(w) + l2 * w
    return value


@jit
def dropout_apply(A, U, p, out):
    _into(A, out)
    o, u = flat_view(out), flat_view(U)
    keep, zero = 1 - p, out.dtype.type(0)
    for i in range(o.size):
        o[i] = o[i] / keep if u[i] >= p else zero


# ---------------------------------------------------------------- optimizer updates
# Each update computes in the parameter's precision, its scalars rounded to it first, as
# the NumPy reference does (NEP 50: Python floats do not widen float32 arrays). In float32
# the sqrt and the division then vectorise twice as wide: rmsprop_update over the MNIST
# network's 670k parameters 0.75 -> 0.31 ms.


@jit
def _in_precision_of(param, x):
    return param.dtype.type(x)


@jit
def sgd_update(param, grad, momentum_buf, lr, momentum, dampening, nesterov, weight_decay):
    rate, wd = _in_precision_of(param, lr), _in_precision_of(param, weight_decay)
    if momentum == 0:  # the common plain-SGD case, as its own vectorisable loop
        for i in range(param.size):
            param[i] -= rate * (grad[i] + wd * param[i])
        return
    mom, undamped = _in_precision_of(param, momentum), _in_precision_of(param, 1 - dampening)
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        momentum_buf[i] = mom * momentum_buf[i] + undamped * g
        g = g + mom * momentum_buf[i] if nesterov else momentum_buf[i]
        param[i] -= rate * g


@jit
def rmsprop_update(param, grad, state, lr, alpha, eps, momentum, centered, weight_decay):
    square_avg, grad_avg, momentum_buf = state[0], state[1], state[2]
    rate, wd, eps_ = (_in_precision_of(param, lr), _in_precision_of(param, weight_decay),
                      _in_precision_of(param, eps))
    decay, rest = _in_precision_of(param, alpha), _in_precision_of(param, 1 - alpha)
    if not centered and momentum == 0:  # the default, as its own vectorisable loop
        for i in range(param.size):
            g = grad[i] + wd * param[i]
            square_avg[i] = decay * square_avg[i] + rest * g * g
            param[i] -= rate * (g / (math.sqrt(square_avg[i]) + eps_))
        return
    mom = _in_precision_of(param, momentum)
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        square_avg[i] = decay * square_avg[i] + rest * g * g
        v = square_avg[i]
        if centered:
            grad_avg[i] = decay * grad_avg[i] + rest * g
            v = v - grad_avg[i] * grad_avg[i]
        step = g / (math.sqrt(v) + eps_)
        if momentum > 0:
            momentum_buf[i] = mom * momentum_buf[i] + step
            step = momentum_buf[i]
        param[i] -= rate * step


@jit
def adam_update(param, grad, state, step_size, beta1, beta2, eps, bias_correction2_sqrt,
                weight_decay, amsgrad):
    exp_avg, exp_avg_sq, max_exp_avg_sq = state[0], state[1], state[2]
    wd, b1, b2 = (_in_precision_of(param, weight_decay), _in_precision_of(param, beta1),
                  _in_precision_of(param, beta2))
    rest1, rest2 = _in_precision_of(param, 1 - beta1), _in_precision_of(param, 1 - beta2)
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        exp_avg[i] = b1 * exp_avg[i] + rest1 * g
        exp_avg_sq[i] = b2 * exp_avg_sq[i] + rest2 * g * g
    second = exp_avg_sq
    if amsgrad:
        for i in range(param.size):
            max_exp_avg_sq[i] = max(max_exp_avg_sq[i], exp_avg_sq[i])
        second = max_exp_avg_sq
    size, correction, eps_ = (_in_precision_of(param, step_size),
                              _in_precision_of(param, bias_correction2_sqrt),
                              _in_precision_of(param, eps))
    for i in range(param.size):
        param[i] -= size * exp_avg[i] / (math.sqrt(second[i]) / correction + eps_)


@jit
def adagrad_update(param, grad, state_sum, clr, eps, weight_decay):
    rate, wd, eps_ = (_in_precision_of(param, clr), _in_precision_of(param, weight_decay),
                      _in_precision_of(param, eps))
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        state_sum[i] += g * g
        param[i] -= rate * g / (math.sqrt(state_sum[i]) + eps_)


# ---------------------------------------------------------------- whole network
# X is never unified with a work view in one variable (its type may differ, e.g.
# read-only), hence the separate calls for the first layer.


@jit
def _block(flat, offset, rows, cols):
    return matrix_view(flat[offset:offset + rows * cols], rows, cols)


@jit
def _weights(theta, row):
    return _block(theta, row[W], row[FAN_IN], row[FAN_OUT]), theta[row[B]:row[B] + row[FAN_OUT]]


@jit
def _forward(X, theta, work, layers, hidden_act, dropout):
    n, last = X.shape[0], layers.shape[0] - 1
    for l in range(last + 1):
        row = layers[l]
        Wl, bl = _weights(theta, row)
        act, target = (IDENTITY, row[Z]) if l == last else (hidden_act, row[A])
        out = _block(work, target, n, row[FAN_OUT])
        if l == 0:
            linear_forward(X, Wl, bl, act, out)
        else:
            linear_forward(_block(work, layers[l - 1, OUT], n, row[FAN_IN]), Wl, bl, act, out)
        if l < last and row[U] >= 0:
            dropout_apply(out, _block(work, row[U], n, row[FAN_OUT]), dropout,
                          _block(work, row[OUT], n, row[FAN_OUT]))


@jit
def network_forward(X, theta, work, layers, spec):
    _forward(X, theta, work, layers, spec[HIDDEN_ACT], 0.0)
    row, n = layers[-1], X.shape[0]
    activation_forward(spec[OUTPUT_ACT], _block(work, row[Z], n, row[FAN_OUT]),
                       _block(work, row[A], n, row[FAN_OUT]))


@jit
def network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs):
    loss = _loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs)
    return loss + _penalties(theta, grad, layers, coefs)


@jit
def _penalties(theta, grad, layers, coefs):
    """The L1 and L2 penalties of every weight matrix, their gradients added into grad."""
    value = 0.0
    if coefs[L1_COEF] != 0 or coefs[L2_COEF] != 0:
        for l in range(layers.shape[0]):
            value += penalty(_weights(theta, layers[l])[0], coefs[L1_COEF], coefs[L2_COEF],
                             _weights(grad, layers[l])[0])
    return value


@jit
def _loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs):
    """Loss and gradients, penalties aside, with activations stored samples x units."""
    n, hidden_act, dropout = X.shape[0], spec[HIDDEN_ACT], coefs[DROPOUT]
    _forward(X, theta, work, layers, hidden_act, dropout)
    row = layers[-1]
    loss = output_loss(spec[OUTPUT_ACT], spec[LOSS], _block(work, row[Z], n, row[FAN_OUT]), Y,
                       _block(work, row[A], n, row[FAN_OUT]),
                       _block(work, row[DZ], n, row[FAN_OUT]))
    for l in range(layers.shape[0] - 1, -1, -1):
        row = layers[l]
        Wl, _ = _weights(theta, row)
        dWl, dbl = _weights(grad, row)
        dZl = _block(work, row[DZ], n, row[FAN_OUT])
        if l == 0:
            linear_backward(X, Wl, dZl, dWl, dbl, None)
            continue
        prev = layers[l - 1]
        inp, d_inp = _block(work, prev[OUT], n, row[FAN_IN]), _block(work, prev[DZ], n, row[FAN_IN])
        prev_act = _block(work, prev[A], n, row[FAN_IN])
        # ReLU's and dropout's masks commute exactly (each keeps an entry or zeroes it, and
        # dropout's scaling of a zero is zero), so ReLU's derivative may come first, fused.
        if hidden_act == RELU:
            _linear_backward(inp, Wl, dZl, dWl, dbl, d_inp, prev_act)
        else:
            _linear_backward(inp, Wl, dZl, dWl, dbl, d_inp, None)
        if prev[U] >= 0:
            dropout_apply(d_inp, _block(work, prev[U], n, row[FAN_IN]), dropout, d_inp)
        if hidden_act != RELU:
            activation_backward(hidden_act, prev_act, d_inp, d_inp)
    return loss


# ---------------------------------------------------------------- one narrow hidden layer
# A network with one hidden layer between a few inputs and a few classes, over many samples
# (spiral: 2-100-3, 300 samples), spends the layer-by-layer step on rows of 2 or 3 numbers:
# a softmax over 3 entries a row in scalar code, dot products over 100 units each ending
# in a horizontal sum, and five passes over the 300 x 100 hidden activations. This step
# stores the activations transposed, units x samples, so every loop runs along a long
# contiguous row of samples and vectorises; it makes one pass over the hidden units
# forward (their ReLU and the output logits) and one backward (all four gradients).
# Its loops are compiled for the number of inputs and of classes (``literally``), and
# only for those a caller uses (see ``step_kernel``): all sixteen took minutes to compile.


def step_kernel(X, layers, spec):
    """The training-step kernel for this network and batch, and the extra arguments it takes
    after network_train_step's: ``narrow_pair_train_step`` with (inputs, classes) for one
    ReLU hidden layer between at most NARROW_K inputs and classes under softmax
    cross-entropy, with no dropout, a batch that fills vectors and whose rows (X.T, the
    softmax's scratch) fit on the stack; otherwise ``network_train_step``."""
    n, k = X.shape[0], int(layers[-1, FAN_OUT])
    if (len(layers) == 2 and spec[HIDDEN_ACT] == RELU and spec[OUTPUT_ACT] == SOFTMAX
            and spec[LOSS] == CROSS_ENTROPY and layers[0, U] < 0 and X.shape[1] <= NARROW_K
            and k <= NARROW_K and n >= MIN_LOOP_COLUMNS
            and max(X.shape[1], k + 2) * n <= STACK_ITEMS):
        return narrow_pair_train_step, (X.shape[1], k)
    return network_train_step, ()


@jit
def _softmax_cross_entropy_t(ZT, Y, P, dZT):
    """softmax_cross_entropy on transposed logits ZT (classes x samples): the gradient into
    dZT transposed, the probabilities into P as the contract has them (samples x classes),
    every loop but the last along the samples."""
    k, n = ZT.shape
    scratch = stack_matrix(ZT, k + 2, n)  # exp of each class, then each sample's peak, total
    E, peak, total = scratch[:k], scratch[k], scratch[k + 1]
    peak[:] = ZT[0]
    for j in range(1, k):
        z = ZT[j]
        for i in range(n):
            peak[i] = max(peak[i], z[i])
    for j in range(k):
        z, e = ZT[j], E[j]
        for i in range(n):
            e[i] = z[i] - peak[i]
    _exp_nonpositive(flat_view(E))
    total[:] = E[0]
    for j in range(1, k):
        total += E[j]
    loss, one, inv_n = 0.0, ZT.dtype.type(1), ZT.dtype.type(1 / n)
    for i in range(n):
        peak[i] += math.log(total[i])  # now the log-sum-exp
        total[i] = one / total[i]
    for j in range(k):
        z, e, d = ZT[j], E[j], dZT[j]
        for i in range(n):
            p = e[i] * total[i]
            P[i, j] = p
            loss += Y[i, j] * (peak[i] - z[i])
            d[i] = (p - Y[i, j]) * inv_n
    return loss / n


@_mm_jit
def _dot4(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]


@_mm_jit
def _unit_weights(kin, W1, b1, p):
    """Hidden unit p's input weights (padded to four) and bias, as scalars: loaded once,
    not in the loop over the samples, where LLVM could not tell them apart from its stores."""
    weights = W1[0, p], W1[min(1, kin - 1), p], W1[min(2, kin - 1), p], W1[min(3, kin - 1), p]
    return weights, b1[p], W1.dtype.type(0)


@_mm_jit
def _hidden_relu(kin, x, unit, i):
    """relu(bias + sum over q < kin of weight[q] * x[q][i]) for ``unit`` = (weights, bias,
    zero) of a hidden unit and x the rows of X.T."""
    (a0, a1, a2, a3), v, zero = unit
    v += a0 * x[0][i]
    if kin > 1:
        v += a1 * x[1][i]
    if kin > 2:
        v += a2 * x[2][i]
    if kin > 3:
        v += a3 * x[3][i]
    return v if v > 0 else zero


@_mm_jit
def _pair_forward(XT, W1, b1, W2, b2, HT, ZT, kin, kout):
    """HT = relu(W1.T @ XT + b1), ZT = W2.T @ HT + b2, four hidden units a pass over the
    samples: each unit's row is stored once and added into the kout logit rows at once."""
    literally(kin)
    literally(kout)
    x = (XT[0], XT[min(1, kin - 1)], XT[min(2, kin - 1)], XT[min(3, kin - 1)])
    # the logits add up on the stack: in ZT, a view of the work array like HT, LLVM could
    # not rule out that they overlap HT's rows, and the loop did not vectorise (39 us)
    logits = stack_matrix(ZT, kout, ZT.shape[1])
    z = (logits[0], logits[min(1, kout - 1)], logits[min(2, kout - 1)], logits[min(3, kout - 1)])
    for j in range(kout):
        logits[j, :] = b2[j]
    hidden, p = W1.shape[1], 0
    while p + 4 <= hidden:
        h0, h1, h2, h3 = HT[p], HT[p + 1], HT[p + 2], HT[p + 3]
        # W2[p:p + 4, j] as scalars: indexed by j inside the loop, they kept it scalar
        w0, w1, w2, w3 = (_column4(W2, p, 0), _column4(W2, p, min(1, kout - 1)),
                          _column4(W2, p, min(2, kout - 1)), _column4(W2, p, min(3, kout - 1)))
        u0, u1, u2, u3 = (_unit_weights(kin, W1, b1, p), _unit_weights(kin, W1, b1, p + 1),
                          _unit_weights(kin, W1, b1, p + 2), _unit_weights(kin, W1, b1, p + 3))
        for i in range(XT.shape[1]):
            v = (_hidden_relu(kin, x, u0, i), _hidden_relu(kin, x, u1, i),
                 _hidden_relu(kin, x, u2, i), _hidden_relu(kin, x, u3, i))
            h0[i], h1[i], h2[i], h3[i] = v
            z[0][i] += _dot4(w0, v)
            if kout > 1:
                z[1][i] += _dot4(w1, v)
            if kout > 2:
                z[2][i] += _dot4(w2, v)
            if kout > 3:
                z[3][i] += _dot4(w3, v)
        p += 4
    for q in range(p, hidden):
        unit = _unit_weights(kin, W1, b1, q)
        for i in range(XT.shape[1]):
            v = _hidden_relu(kin, x, unit, i)
            HT[q, i] = v
            for j in range(kout):
                z[j][i] += W2[q, j] * v
    ZT[:] = logits


@_dot_jit
def _pair_backward(XT, HT, dZT, W2, dW1, db1, dW2, kin, kout):
    """dW2, db1 and dW1 of ``narrow_pair_train_step``, one pass over the samples a
    hidden unit p: its kout dot products with dZT (dW2[p]), and its delta (dZT's rows
    weighted by W2[p], ReLU's mask applied) summed into db1[p] and dotted with X.T's rows
    into dW1[:, p], never stored."""
    literally(kin)
    literally(kout)
    x = (XT[0], XT[min(1, kin - 1)], XT[min(2, kin - 1)], XT[min(3, kin - 1)])
    dz = (dZT[0], dZT[min(1, kout - 1)], dZT[min(2, kout - 1)], dZT[min(3, kout - 1)])
    zero = HT.dtype.type(0)
    for p in range(HT.shape[0]):
        h, w = HT[p], W2[p]
        w0, w1, w2, w3 = w[0], w[min(1, kout - 1)], w[min(2, kout - 1)], w[min(3, kout - 1)]
        c0 = c1 = c2 = c3 = g0 = g1 = g2 = g3 = bias = zero
        for i in range(h.size):
            hv, z0 = h[i], dz[0][i]
            c0 += hv * z0
            d = w0 * z0
            if kout > 1:
                z1 = dz[1][i]
                c1 += hv * z1
                d += w1 * z1
            if kout > 2:
                z2 = dz[2][i]
                c2 += hv * z2
                d += w2 * z2
            if kout > 3:
                z3 = dz[3][i]
                c3 += hv * z3
                d += w3 * z3
            d = d if hv > 0 else zero
            bias += d
            g0 += x[0][i] * d
            if kin > 1:
                g1 += x[1][i] * d
            if kin > 2:
                g2 += x[2][i] * d
            if kin > 3:
                g3 += x[3][i] * d
        c, g = (c0, c1, c2, c3), (g0, g1, g2, g3)
        for j in range(kout):
            dW2[p, j] = c[j]
        for q in range(kin):
            dW1[q, p] = g[q]
        db1[p] = bias


@jit
def narrow_pair_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state,
                           scalars, kin, kout):
    """network_train_step for ``step_kernel``'s narrow networks (X with kin columns, kout
    classes): the hidden layer, the logits and their gradient stored transposed (units x
    samples) in their work regions, the output probabilities as the contract has them
    (fit reads them), and the hidden layer's gradient never stored."""
    literally(kin)
    literally(kout)
    n, hidden = X.shape[0], layers[0, FAN_OUT]
    XT = stack_matrix(X, kin, n)
    _transpose_into(X, XT)
    (W1, b1), (W2, b2) = _weights(theta, layers[0]), _weights(theta, layers[1])
    (dW1, db1), (dW2, db2) = _weights(grad, layers[0]), _weights(grad, layers[1])
    HT, ZT = _block(work, layers[0, A], hidden, n), _block(work, layers[1, Z], kout, n)
    dZT = _block(work, layers[1, DZ], kout, n)
    _pair_forward(XT, W1, b1, W2, b2, HT, ZT, kin, kout)
    loss = _softmax_cross_entropy_t(ZT, Y, _block(work, layers[1, A], n, kout), dZT)
    _pair_backward(XT, HT, dZT, W2, dW1, db1, dW2, kin, kout)
    for j in range(kout):
        total, row = dZT.dtype.type(0), dZT[j]
        for i in range(n):
            total += row[i]
        db2[j] = total
    loss += _penalties(theta, grad, layers, coefs)
    _update(optimizer, theta, grad, state, scalars)
    return loss


@jit
def _update(optimizer, param, grad, state, s):
    """The update kernel of ``optimizer`` with its scalars ``s`` (flags stored as 0 or 1)."""
    if optimizer == SGD:
        sgd_update(param, grad, state[0], s[0], s[1], s[2], s[3] != 0, s[4])
    elif optimizer == RMSPROP:
        rmsprop_update(param, grad, state, s[0], s[1], s[2], s[3], s[4] != 0, s[5])
    elif optimizer == ADAM:
        adam_update(param, grad, state, s[0], s[1], s[2], s[3], s[4], s[5], s[6] != 0)
    else:
        adagrad_update(param, grad, state[0], s[0], s[1], s[2])


@jit
def network_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state, scalars):
    loss = network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs)
    _update(optimizer, theta, grad, state, scalars)
    return loss


def specialise(kernel, args, literals=()):
    """``kernel`` compiled for the types of ``args`` and the values of ``literals`` (the
    trailing integer arguments it asks ``literally`` for), to be called without Numba's
    per-call type dispatch: 0.3 us of the 1.8 us an 11-argument ``network_train_step``
    call takes at the XOR size. Only for a caller whose arguments keep exactly these types
    and values (the model's step binds its arrays once); anything else must call ``kernel``
    itself."""
    if not hasattr(kernel, "compile"):  # NUMBA_DISABLE_JIT: a plain Python function
        return kernel
    return kernel.compile(tuple(numba.typeof(a) for a in args)
                          + tuple(numba.types.literal(v) for v in literals))
