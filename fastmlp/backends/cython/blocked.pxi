# The own blocked product, GotoBLAS-style: B packed PACK_ROWS rows at a time into panels
# of tile_columns (contiguous, zero-padded: the packed block stays in L2), the TILE_ROWS rows
# of A a tile needs packed interleaved (they stay in L1), and each tile summed in vector
# registers by tile (intrinsics.h), then stored into (or, after the first block of K,
# added to) C straight from them. The threads share the packing (OpenMP).


cdef void pack_panel(const floating* B, int ldb, int kc, int n, int panel,
                     floating* packed) noexcept nogil:
    """packed[panel, p, j] = B[p, panel * NR + j], zero past column n."""
    cdef int nr = tile_columns(sizeof(floating)), j0 = panel * nr, width = min(nr, n - j0), p, j
    cdef floating* dst
    for p in range(kc):
        dst = packed + (panel * kc + p) * nr
        for j in range(width):
            dst[j] = B[p * ldb + j0 + j]
        for j in range(width, nr):
            dst[j] = 0


cdef void pack_rows(const floating* A, int lda, int rows, int kc, floating* packed) noexcept nogil:
    """packed[p, r] = A[r, p], zero for r >= rows: the tile reads TILE_ROWS values at once."""
    cdef int p, r
    for p in range(kc):
        for r in range(TILE_ROWS):
            packed[p * TILE_ROWS + r] = A[r * lda + p] if r < rows else 0


cdef void row_block_product(const floating* A, int lda, int rows, const floating* packed,
                            int kc, int n, floating* C, bint accumulate) noexcept nogil:
    """C[:rows, :n] (+)= A[:rows, :kc] @ the packed block of B, one panel at a time; the
    packed rows of A, and the tile at the edges of C, live on this thread's stack."""
    cdef floating a_pack[TILE_ROWS * PACK_ROWS]
    cdef floating edge[TILE_ROWS * TILE_COLUMNS_MAX]
    cdef int nr = tile_columns(sizeof(floating)), panel, cols, r, j
    pack_rows(A, lda, rows, kc, a_pack)
    for panel in range((n + nr - 1) // nr):
        cols = min(nr, n - panel * nr)
        if rows == TILE_ROWS and cols == nr:
            tile(a_pack, packed + panel * kc * nr, kc, C + panel * nr, n, accumulate)
            continue
        tile(a_pack, packed + panel * kc * nr, kc, edge, nr, False)
        for r in range(rows):
            for j in range(cols):
                if accumulate:
                    C[r * n + panel * nr + j] += edge[r * nr + j]
                else:
                    C[r * n + panel * nr + j] = edge[r * nr + j]


def matmul_blocked(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] out):
    """The own blocked product (see this file's first comment): K in equal blocks of at most
    PACK_ROWS; each block of B packed, by all threads, into one buffer (malloc'd once per
    call and freed on every path); then row blocks of TILE_ROWS in parallel (OpenMP)."""
    cdef int m = A.shape[0], k = A.shape[1], n = B.shape[1], nr = tile_columns(sizeof(floating))
    cdef int depth = max(1, (k + PACK_ROWS - 1) // PACK_ROWS), kc = (k + depth - 1) // depth
    cdef int panels = (n + nr - 1) // nr, block, p0, width, i0, panel
    cdef floating* packed
    if k == 0 or n == 0:  # nothing to pack (and malloc(0) may return NULL)
        out[:, :] = 0
        return
    packed = <floating*>malloc(kc * panels * nr * sizeof(floating))
    if packed == NULL:
        raise MemoryError()
    with nogil:  # nothing in here can fail, so the free below is always reached
        for block in range(depth):
            p0 = block * kc
            width = min(kc, k - p0)
            for panel in prange(panels, schedule="static"):
                pack_panel(&B[p0, 0], n, width, n, panel, packed)
            for i0 in prange(0, m, TILE_ROWS, schedule="static"):
                row_block_product(&A[i0, p0], k, min(TILE_ROWS, m - i0), packed, width, n,
                                  &out[i0, 0], block > 0)
    free(packed)
