"""Matrix products: the path ``tuning.gemm_path`` picks for each shape, and its loops.

The narrow loops fold in their neighbours' passes where a layer asks (bias and ReLU
forward, ReLU's derivative into dX, db into dW); measurements in docs/performance.md.
"""
import numpy as np
from numba import literally, types
from numba.extending import overload

from fastmlp.backends.numba.intrinsics import (contract_jit, copy_into, inline_kernel_jit, jit,
                                               kernel_jit, reassoc_jit, stack_matrix)
from fastmlp.backends.tuning import (COPY_BT, LOOP_PATH, NARROW_K, NARROW_K_PATH,
                                     NARROW_N_PATH, STACK_ITEMS, NarrowLoops, gemm_path)


@jit
def gemm_loop(A, B, out):
    """out = A @ B for any layouts (A or B may be a transposed view): i-k-j order."""
    out[:] = 0
    for i in range(A.shape[0]):
        for p in range(A.shape[1]):
            a = A[i, p]
            for j in range(B.shape[1]):
                out[i, j] += a * B[p, j]


@kernel_jit
def matmul_blas(A, B, out):
    np.dot(A, B, out)


@contract_jit
def terms(k, a, b, j):
    """sum over q < k of a[q] * b[q][j], in order (k a compile-time constant: no loop)."""
    v = a[0] * b[0][j]
    if k > 1:
        v += a[1] * b[1][j]
    if k > 2:
        v += a[2] * b[2][j]
    if k > 3:
        v += a[3] * b[3][j]
    return v


@contract_jit
def narrow_k_fixed(A, B, out, bias, relu, gate, k):
    """``narrow_k`` compiled for one k (``literally``: each k gets its own loop, with no
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
                v = terms(k, a, b, j)
                o[j] = v if g[j] > 0 else zero
        elif relu:
            for j in range(o.size):
                v = terms(k, a, b, j)
                if bias is not None:
                    v += bias[j]
                o[j] = zero if v <= 0 else v  # a NaN stays NaN
        else:
            for j in range(o.size):
                v = terms(k, a, b, j)
                if bias is not None:
                    v += bias[j]
                o[j] = v


def narrow_selection(narrow):
    """The narrow loops a kernel's ``narrow`` compiles in, as ``tuning.NarrowLoops``: True
    selects them all; a ``NarrowLoops`` (``tuning.narrow_selection``, for one call's
    shapes) is its own selection. Its flags become arguments of the function that
    branches on them, where Numba prunes the branches of the None ones before typing them:
    their loops are never compiled."""
    return ALL_NARROW_LOOPS if narrow is True else narrow


ALL_NARROW_LOOPS = NarrowLoops((True,) * NARROW_K, (True,) * NARROW_K, True, True)


@overload(narrow_selection)
def _narrow_selection(narrow):
    if isinstance(narrow, types.Boolean):
        return lambda narrow: ALL_NARROW_LOOPS  # a global tuple: a constant to Numba
    return lambda narrow: narrow


@contract_jit
def narrow_k(A, B, out, bias, relu, gate, narrow):
    """out = A @ B (+ bias) for k <= NARROW_K, one pass over each row of out (the i-k-j loop
    makes k passes, each loading and storing the row). In the same pass, ReLU if ``relu``
    (a forward layer), or, given a ``gate`` (a ReLU output), the mask of ReLU's derivative
    (a backward dX): a pass over out saved (docs/performance.md, products). The loops of
    the k's ``narrow`` selects are compiled in (``narrow_selection``)."""
    k1, k2, k3, k4 = narrow_selection(narrow).narrow_k
    if B.flags.c_contiguous:
        narrow_k_rows(A, B, out, bias, relu, gate, k1, k2, k3, k4)
    else:  # a transposed B (dX = dZ @ W.T): its k short rows, copied to the stack
        rows = stack_matrix(out, B.shape[0], B.shape[1])
        for p in range(B.shape[0]):
            for j in range(B.shape[1]):
                rows[p, j] = B[p, j]
        narrow_k_rows(A, rows, out, bias, relu, gate, k1, k2, k3, k4)


@contract_jit
def narrow_k_rows(A, B, out, bias, relu, gate, k1, k2, k3, k4):
    k = A.shape[1]
    if k1 is not None and k == 1:
        narrow_k_fixed(A, B, out, bias, relu, gate, 1)
    elif k2 is not None and k == 2:
        narrow_k_fixed(A, B, out, bias, relu, gate, 2)
    elif k3 is not None and k == 3:
        narrow_k_fixed(A, B, out, bias, relu, gate, 3)
    elif k4 is not None and k == 4:
        narrow_k_fixed(A, B, out, bias, relu, gate, 4)
    else:
        raise ValueError(NOT_SELECTED)


#: What a kernel raises when a shape takes a narrow loop its ``narrow`` did not compile in.
NOT_SELECTED = "narrow: the loop this shape takes is not compiled in (narrow_selection)"


@contract_jit
def column4(X, i, q):
    return X[i, q], X[i + 1, q], X[i + 2, q], X[i + 3, q]


@contract_jit
def weight_grads_fixed(X, dZ, dW, db, k):
    """``weight_grads`` for one fan-in k <= 4 (a literal, as in ``narrow_k_fixed``)."""
    literally(k)
    sums = stack_matrix(dW, k + 1, dW.shape[1])  # on the stack: LLVM knows dZ is elsewhere
    sums[:] = 0
    g, db_sum = (sums[0], sums[min(1, k - 1)], sums[min(2, k - 1)], sums[min(3, k - 1)]), sums[k]
    m, i = X.shape[0], 0
    while i + 4 <= m:  # four rows of dZ a pass: one load and store of each sum per four
        z = (dZ[i], dZ[i + 1], dZ[i + 2], dZ[i + 3])
        x0, x1, x2, x3 = (column4(X, i, 0), column4(X, i, min(1, k - 1)),
                          column4(X, i, min(2, k - 1)), column4(X, i, min(3, k - 1)))
        for j in range(dZ.shape[1]):
            db_sum[j] += (z[0][j] + z[1][j]) + (z[2][j] + z[3][j])
            g[0][j] += terms(4, x0, z, j)
            if k > 1:
                g[1][j] += terms(4, x1, z, j)
            if k > 2:
                g[2][j] += terms(4, x2, z, j)
            if k > 3:
                g[3][j] += terms(4, x3, z, j)
        i += 4
    for r in range(i, m):
        for j in range(dZ.shape[1]):
            db_sum[j] += dZ[r, j]
            for q in range(k):
                sums[q, j] += X[r, q] * dZ[r, j]
    copy_into(sums[:k], dW)
    copy_into(db_sum, db)


@contract_jit
def weight_grads(X, dZ, dW, db, k1, k2, k3, k4):
    """dW = X.T @ dZ and db = dZ's column sums for a narrow X (fan-in <= NARROW_K), in one
    pass over dZ, by the loop for X's k if its flag (``narrow_selection``) is not None.
    The sums accumulate on the stack: in dW's rows, LLVM could not rule out that they
    overlap dZ, and the loop did not vectorise."""
    k = X.shape[1]
    if k1 is not None and k == 1:
        weight_grads_fixed(X, dZ, dW, db, 1)
    elif k2 is not None and k == 2:
        weight_grads_fixed(X, dZ, dW, db, 2)
    elif k3 is not None and k == 3:
        weight_grads_fixed(X, dZ, dW, db, 3)
    elif k4 is not None and k == 4:
        weight_grads_fixed(X, dZ, dW, db, 4)
    else:
        raise ValueError(NOT_SELECTED)


@jit
def transpose_into(M, out):
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            out[j, i] = M[i, j]


@reassoc_jit
def narrow_n(A, B, out):
    """out = A @ B for few columns n, A rows contiguous: B.T copied to the stack, then dot
    products of four rows of A with each of its rows (each row of B.T loaded serves four)."""
    m, k, n = A.shape[0], A.shape[1], B.shape[1]
    BT = stack_matrix(out, n, k)
    transpose_into(B, BT)
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


@contract_jit
def narrow_n_transposed_a(AT, B, out):
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


@contract_jit
def narrow_n_either(A, B, out, rows, transposed):
    """The narrow-n loop for A's layout, if its flag (``narrow_selection``) is not None."""
    if rows is not None and A.flags.c_contiguous:
        narrow_n(A, B, out)
    elif transposed is not None and not A.flags.c_contiguous:
        narrow_n_transposed_a(A.T, B, out)
    else:
        raise ValueError(NOT_SELECTED)


@inline_kernel_jit
def gemm(A, B, out, narrow=True):
    """out = A @ B by the path ``gemm_path`` picks for the shape and the layouts. With
    ``narrow`` None (a caller none of whose shapes takes a narrow loop:
    ``tuning.narrow_loops``) the narrow loops are not compiled in."""
    m, k, n = A.shape[0], A.shape[1], B.shape[1]
    gemm_on_path(gemm_path(m, k, n, not A.flags.c_contiguous, not B.flags.c_contiguous), A, B,
                 out, narrow)


@jit
def gemm_on_path(path, A, B, out, narrow=True):
    """gemm by ``path`` (GEMM_PATHS), which must apply to the shape (its stack scratch);
    with ``narrow`` None, a narrow path takes BLAS (Numba prunes the branches on None
    before it types them, so their loops are never compiled), else the narrow loops it
    selects (``narrow_selection``) are compiled in."""
    if narrow is not None and path == NARROW_K_PATH:
        narrow_k(A, B, out, None, False, None, narrow)
    elif narrow is not None and path == NARROW_N_PATH:
        loops = narrow_selection(narrow)
        narrow_n_either(A, B, out, loops.narrow_n, loops.narrow_n_transposed)
    elif path == LOOP_PATH:
        gemm_loop(A, B, out)
    elif COPY_BT and not B.flags.c_contiguous and B.size <= STACK_ITEMS:
        BT = stack_matrix(out, B.shape[0], B.shape[1])  # for BLAS's small kernels (tuning.py)
        for p in range(B.shape[0]):
            for j in range(B.shape[1]):
                BT[p, j] = B[p, j]
        np.dot(A, BT, out)
    else:
        np.dot(A, B, out)


#: The contract's name for gemm: the same dispatcher, so one compile serves both (a
#: wrapper would be one more function for LLVM to optimise, with gemm linked in).
matmul = gemm


@kernel_jit
def matmul_path(A, B, out, path):
    """out = A @ B by ``path``, whatever the shape's path (for tests and bench)."""
    gemm_on_path(path, A, B, out)
