"""The own blocked product, GotoBLAS-style, as the Cython backend's: B packed PACK_ROWS rows
at a time into panels of ``tile_columns`` (zero-padded), the TILE_ROWS rows of A a tile needs
packed interleaved on the stack, and each tile summed in vector registers (``tile``).
"""
import numpy as np
from numba import prange

from fastmlp.backends.numba.intrinsics import (FASTMATH, compiled, flat_view, jit, stack_matrix,
                                              tile)
from fastmlp.backends.tuning import PACK_ROWS, TILE_ROWS, tile_columns


@jit
def pack_panel(B, p0, depth, panel, columns, packed):
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
def row_block_product(A, i0, p0, depth, packed, columns, out, accumulate):
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
            tile(flat, packed, panel * depth * columns, depth, out, i0, j0, accumulate)
            continue
        tile(flat, packed, panel * depth * columns, depth, edge, 0, 0, False)
        for r in range(rows):
            for j in range(cols):
                out[i0 + r, j0 + j] = (out[i0 + r, j0 + j] if accumulate else zero) + edge[r, j]


@compiled(True, parallel=True, fastmath=FASTMATH)
def matmul_blocked(A, B, out):
    """The own blocked product (see the module docstring): K in equal blocks of at most
    PACK_ROWS; each block of B packed by all threads, then blocks of TILE_ROWS rows of out in
    parallel."""
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
            pack_panel(B, p0, rows_of_b, panel, columns, packed)
        for row_tile in prange((m + TILE_ROWS - 1) // TILE_ROWS):
            row_block_product(A, row_tile * TILE_ROWS, p0, rows_of_b, packed, columns, out,
                               block > 0)
