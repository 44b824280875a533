# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled kernels of the cython backend; see fastmlp.backends.contract.

Bounds checking is off: every array reaching these functions has been checked by
the contract's wrappers or built by the model. IN arrays are const memoryviews
(read-only inputs work), OUT arrays are written in place.
"""
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, expf, fabs, log, log1p, logf, sqrt, sqrtf, tanh
from libc.stdlib cimport free, malloc
from libc.string cimport memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

cnp.import_array()

cdef enum:  # contract.ACTIVATIONS, LOSSES and the layout columns
    IDENTITY, RELU, SIGMOID, TANH, SOFTMAX
cdef enum:
    CROSS_ENTROPY, MSE, L1
cdef enum:
    FAN_IN, FAN_OUT, COL_W, COL_B, COL_Z, COL_A, COL_U, COL_OUT, COL_DZ
cdef enum:  # contract.OPTIMIZERS
    SGD, RMSPROP, ADAM, ADAGRAD

# Loop or BLAS, by shape: the numba backend's rule and loops (its figures are next to
# its thresholds; these loops measured the same ranking). Below TINY_GEMM a plain loop
# whatever the layout; k <= NARROW_K or n < MIN_LOOP_COLUMNS the narrow loops below
# NARROW_GEMM, their narrow operand transposed on the stack (STACK_ITEMS elements); other
# shapes with contiguous B rows of at least MIN_LOOP_COLUMNS the i-k-j loop below SMALL_GEMM.
cdef enum:
    TINY_GEMM = 2048
    SMALL_GEMM = 65536
    NARROW_GEMM = 1 << 19
    NARROW_K = 4
    MIN_LOOP_COLUMNS = 8
    STACK_ITEMS = 4096

# ---------------------------------------------------------------- matrix products

# Bit-level helpers (C): GCC vectorises loops calling them.
cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* 2**n from t = n + 1.5 * 2**23 + 127 (float) or n + 1.5 * 2**52 + 1023 (double). */
    static inline float fastmlp_pow2_f32(float t) {
        uint32_t bits; memcpy(&bits, &t, 4); bits <<= 23; memcpy(&t, &bits, 4); return t;
    }
    static inline double fastmlp_pow2_f64(double t) {
        uint64_t bits; memcpy(&bits, &t, 8); bits <<= 52; memcpy(&t, &bits, 8); return t;
    }
    /* v, or +0 where below is true, by a mask: a branch would hold the multiply making v,
       and GCC does not move a float operation out of a branch (it may trap), nor vectorise. */
    static inline float fastmlp_zero_where_f32(int below, float v) {
        uint32_t bits; memcpy(&bits, &v, 4); bits &= (uint32_t)below - 1u; memcpy(&v, &bits, 4);
        return v;
    }
    static inline double fastmlp_zero_where_f64(int below, double v) {
        uint64_t bits; memcpy(&bits, &v, 8); bits &= (uint64_t)below - 1u; memcpy(&v, &bits, 8);
        return v;
    }
    """
    float pow2_f32 "fastmlp_pow2_f32"(float t) noexcept nogil
    double pow2_f64 "fastmlp_pow2_f64"(double t) noexcept nogil
    float zero_where_f32 "fastmlp_zero_where_f32"(bint below, float v) noexcept nogil
    double zero_where_f64 "fastmlp_zero_where_f64"(bint below, double v) noexcept nogil


cdef inline floating zero_where(bint condition, floating v) noexcept nogil:
    """+0 where condition, else v, branch-free (see fastmlp_zero_where_f32)."""
    if floating is float:
        return zero_where_f32(condition, v)
    else:
        return zero_where_f64(condition, v)


cdef inline floating element(const floating* M, int ld, bint trans, int r, int c) noexcept nogil:
    """op(M)[r, c] of a row-major M stored with rows of ld."""
    return M[c * ld + r] if trans else M[r * ld + c]


cdef enum:  # what narrow_k does to each entry of its product (GATED: keep where gate > 0,
    AS_IS, ADD_BIAS, ADD_BIAS_RELU, GATED  # the relu derivative from the layer's output)


cdef inline floating finish(floating v, const floating* extra, int j, int epilogue) noexcept nogil:
    """v after epilogue; extra is the bias, or GATED's gate row."""
    if epilogue == AS_IS:
        return v
    if epilogue == GATED:
        return zero_where(not extra[j] > 0, v)
    v = v + extra[j]
    return (v if v > 0 else 0) if epilogue == ADD_BIAS_RELU else v


cdef inline void narrow_k_row(int n, int k, const floating* a, const floating* B,
                              const floating* bias, int epilogue, floating* c) noexcept nogil:
    """c = a @ B (k <= NARROW_K entries of a, B (k, n) contiguous), finished by epilogue;
    inlined with a constant epilogue, so that each kind is its own vectorised loop."""
    cdef int j
    cdef const floating* b0 = B
    cdef const floating* b1 = B + min(1, k - 1) * n
    cdef const floating* b2 = B + min(2, k - 1) * n
    cdef const floating* b3 = B + min(3, k - 1) * n
    cdef floating a0 = a[0], a1 = a[min(1, k - 1)], a2 = a[min(2, k - 1)], a3 = a[min(3, k - 1)]
    if k == 1:
        for j in range(n):
            c[j] = finish(a0 * b0[j], bias, j, epilogue)
    elif k == 2:
        for j in range(n):
            c[j] = finish(a0 * b0[j] + a1 * b1[j], bias, j, epilogue)
    elif k == 3:
        for j in range(n):
            c[j] = finish(a0 * b0[j] + a1 * b1[j] + a2 * b2[j], bias, j, epilogue)
    else:
        for j in range(n):
            c[j] = finish(a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j], bias, j, epilogue)


cdef void narrow_k(bint trans_a, int m, int n, int k, const floating* A, int lda,
                   const floating* B, floating* C, const floating* extra,
                   int epilogue) noexcept nogil:
    """C = op(A) @ B for k <= NARROW_K, B (k, n) contiguous, finished as epilogue says (extra:
    the bias, or for GATED the gate, (m, n)): one pass over each row of C. A layer's product, bias and relu in one pass, at
    X @ W1 + b1 300x2x100 float32: 3.3 us (6.0 us as a product pass, then a bias-relu pass)."""
    cdef int i, p
    cdef floating a[NARROW_K]
    for i in range(m):
        for p in range(k):
            a[p] = element(A, lda, trans_a, i, p)
        if epilogue == ADD_BIAS_RELU:
            narrow_k_row(n, k, a, B, extra, ADD_BIAS_RELU, C + i * n)
        elif epilogue == ADD_BIAS:
            narrow_k_row(n, k, a, B, extra, ADD_BIAS, C + i * n)
        elif epilogue == GATED:
            narrow_k_row(n, k, a, B, extra + i * n, GATED, C + i * n)
        else:
            narrow_k_row(n, k, a, B, extra, AS_IS, C + i * n)


cdef void narrow_k_transposed_b(bint trans_a, int m, int n, int k, const floating* A, int lda,
                                const floating* B, int ldb, floating* C, const floating* extra,
                                int epilogue) noexcept nogil:
    """narrow_k for C = op(A) @ B.T (dX = dZ @ W.T): B.T's k short rows, copied to the stack."""
    cdef floating rows[STACK_ITEMS]
    cdef int p, j
    for p in range(k):
        for j in range(n):
            rows[p * n + j] = B[j * ldb + p]
    narrow_k(trans_a, m, n, k, A, lda, rows, C, extra, epilogue)


cdef inline bint takes_narrow_k(int m, int n, int k) noexcept nogil:
    """Whether gemm computes this shape by narrow_k."""
    cdef long long size = <long long>m * n * k
    return (TINY_GEMM <= size < NARROW_GEMM and k <= NARROW_K and n >= MIN_LOOP_COLUMNS
            and k * n <= STACK_ITEMS)


# Dot products of two rows of A with four rows of B.T at once (A @ B for few columns of B):
# eight independent sums in vector registers. One dot at a time in a loop chains each FMA
# on the one before (~35 cycles a dot of 100): H @ W2 at 300x100x3 float32 took 10.6 us,
# this 2.6 us. C with vector extensions, as the tile of matmul_blocked below.
cdef extern from *:
    """
    #define FASTMLP_DOTS(T, NAME)                                                       \
    static void NAME(const T* a0, const T* a1, const T* bt, int k, T* c0, T* c1,        \
                     int cols) {                                                        \
        typedef T vec __attribute__((vector_size(32), aligned(sizeof(T))));            \
        typedef T half __attribute__((vector_size(16), aligned(sizeof(T))));           \
        enum { LANES = 32 / sizeof(T), HALF = LANES / 2 };                              \
        union halves { vec whole; half part[2]; };                                     \
        vec s0[4] = {0}, s1[4] = {0};                                                   \
        half h0[4], h1[4];                                                              \
        T d0[4] = {0}, d1[4] = {0};                                                     \
        int p = 0;                                                                      \
        for (; p + LANES <= k; p += LANES) {                                            \
            vec x0 = *(const vec*)(a0 + p), x1 = *(const vec*)(a1 + p);                 \
            for (int j = 0; j < 4; j++) {                                               \
                vec w = *(const vec*)(bt + j * k + p);                                  \
                s0[j] += x0 * w;                                                        \
                s1[j] += x1 * w;                                                        \
            }                                                                           \
        }                                                                               \
        for (int j = 0; j < 4; j++) {  /* halves added: a short in-order sum after */   \
            union halves u0 = {s0[j]}, u1 = {s1[j]};                                   \
            h0[j] = u0.part[0] + u0.part[1];                                            \
            h1[j] = u1.part[0] + u1.part[1];                                            \
        }                                                                               \
        if (p + HALF <= k) {  /* a half vector of the rest (k = 100 floats: 12 + 1/2) */\
            half x0 = *(const half*)(a0 + p), x1 = *(const half*)(a1 + p);             \
            for (int j = 0; j < 4; j++) {                                               \
                half w = *(const half*)(bt + j * k + p);                                \
                h0[j] += x0 * w;                                                        \
                h1[j] += x1 * w;                                                        \
            }                                                                           \
            p += HALF;                                                                  \
        }                                                                               \
        for (int j = 0; j < 4; j++)                                                     \
            for (int l = 0; l < HALF; l++) {                                            \
                d0[j] += h0[j][l];                                                      \
                d1[j] += h1[j][l];                                                      \
            }                                                                           \
        for (; p < k; p++)                                                              \
            for (int j = 0; j < 4; j++) {                                               \
                d0[j] += a0[p] * bt[j * k + p];                                         \
                d1[j] += a1[p] * bt[j * k + p];                                         \
            }                                                                           \
        for (int j = 0; j < cols; j++) {                                                \
            c0[j] = d0[j];                                                              \
            c1[j] = d1[j];                                                              \
        }                                                                               \
    }
    FASTMLP_DOTS(float, fastmlp_dots_f32)
    FASTMLP_DOTS(double, fastmlp_dots_f64)
    """
    void dots_f32 "fastmlp_dots_f32"(const float* a0, const float* a1, const float* bt, int k,
                                     float* c0, float* c1, int cols) noexcept nogil
    void dots_f64 "fastmlp_dots_f64"(const double* a0, const double* a1, const double* bt,
                                     int k, double* c0, double* c1, int cols) noexcept nogil

cdef enum:
    DOT_COLUMNS = 4  # columns of B a pass of the dots above


cdef inline int dot_padded(int n) noexcept nogil:
    """n rounded up to a multiple of DOT_COLUMNS."""
    return (n + DOT_COLUMNS - 1) // DOT_COLUMNS * DOT_COLUMNS


cdef void narrow_n(bint trans_b, int m, int n, int k, const floating* A, const floating* B,
                   int ldb, floating* C) noexcept nogil:
    """C = A @ op(B) for few columns n, A (m, k) contiguous: dot products of A's rows, two at
    a time, with op(B)'s columns, copied to the stack as rows (zero rows up to a multiple of
    DOT_COLUMNS)."""
    cdef floating BT[STACK_ITEMS]
    cdef int i, i1, j, p, padded = dot_padded(n)
    for j in range(padded):
        for p in range(k):
            BT[j * k + p] = element(B, ldb, trans_b, p, j) if j < n else <floating>0
    for i in range(0, m, 2):
        i1 = min(i + 1, m - 1)  # an odd last row is computed twice
        for j in range(0, padded, 4):  # DOT_COLUMNS (range needs a literal step)
            if floating is float:
                dots_f32(A + i * k, A + i1 * k, BT + j * k, k, C + i * n + j, C + i1 * n + j,
                         min(DOT_COLUMNS, n - j))
            else:
                dots_f64(A + i * k, A + i1 * k, BT + j * k, k, C + i * n + j, C + i1 * n + j,
                         min(DOT_COLUMNS, n - j))


cdef void narrow_n_transposed_a(int m, int n, int k, const floating* AT, int lda,
                                const floating* B, int ldb, bint trans_b,
                                floating* C) noexcept nogil:
    """C = AT.T @ op(B) for few columns n, AT (k, m) stored row-major (X in dW = X.T @ dZ):
    rank-4 updates of C.T, held on the stack, whose rows are long and contiguous."""
    cdef floating CT[STACK_ITEMS]
    cdef floating b0, b1, b2, b3
    cdef const floating* a0
    cdef const floating* a1
    cdef const floating* a2
    cdef const floating* a3
    cdef floating* c
    cdef int i, j, p = 0
    memset(CT, 0, m * n * sizeof(floating))
    while p + 4 <= k:  # four rows of AT a pass: one load and store of C.T per four updates
        # Row pointers: under Python's -fwrapv (setup.py now undoes it) an index like
        # 2 * lda + i may wrap, and GCC gathered.
        a0, a1, a2, a3 = AT + p * lda, AT + (p + 1) * lda, AT + (p + 2) * lda, AT + (p + 3) * lda
        for j in range(n):
            b0, b1 = element(B, ldb, trans_b, p, j), element(B, ldb, trans_b, p + 1, j)
            b2, b3 = element(B, ldb, trans_b, p + 2, j), element(B, ldb, trans_b, p + 3, j)
            c = CT + j * m
            for i in range(m):
                c[i] += b0 * a0[i] + b1 * a1[i] + b2 * a2[i] + b3 * a3[i]
        p += 4
    for p in range(p, k):
        a0 = AT + p * lda
        for j in range(n):
            b0, c = element(B, ldb, trans_b, p, j), CT + j * m
            for i in range(m):
                c[i] += b0 * a0[i]
    for i in range(m):
        for j in range(n):
            C[i * n + j] = CT[j * m + i]


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, const floating* A, int lda,
               const floating* B, int ldb, floating* C) noexcept nogil:
    """C (m, n) = op(A) @ op(B), row-major, lda/ldb the stored row lengths."""
    cdef int i, j, p
    cdef floating a
    cdef floating* c_row
    cdef const floating* b_row
    cdef long long size = <long long>m * n * k
    if TINY_GEMM <= size < NARROW_GEMM:
        if takes_narrow_k(m, n, k) and trans_b:
            narrow_k_transposed_b(trans_a, m, n, k, A, lda, B, ldb, C, <floating*>NULL, AS_IS)
            return
        if takes_narrow_k(m, n, k):
            narrow_k(trans_a, m, n, k, A, lda, B, C, <floating*>NULL, AS_IS)
            return
        if n < MIN_LOOP_COLUMNS and trans_a and m * n <= STACK_ITEMS:
            narrow_n_transposed_a(m, n, k, A, lda, B, ldb, trans_b, C)
            return
        if n < MIN_LOOP_COLUMNS and not trans_a and k * dot_padded(n) <= STACK_ITEMS:
            narrow_n(trans_b, m, n, k, A, B, ldb, C)
            return
    if m * n * k < TINY_GEMM and trans_b:
        for i in range(m):
            for j in range(n):
                a = 0
                for p in range(k):
                    a += (A[p * lda + i] if trans_a else A[i * lda + p]) * B[j * ldb + p]
                C[i * n + j] = a
        return
    if not trans_b and (m * n * k < TINY_GEMM
                        or (m * n * k < SMALL_GEMM and n >= MIN_LOOP_COLUMNS)):
        memset(C, 0, m * n * sizeof(floating))
        for i in range(m):
            c_row = C + i * n  # row pointers: the inner loop indexes by j alone, which
            for p in range(k):  # GCC vectorises even under Python's -fwrapv (now undone)
                a = A[p * lda + i] if trans_a else A[i * lda + p]
                b_row = B + p * ldb
                for j in range(n):
                    c_row[j] += a * b_row[j]
        return
    # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
    cdef char* ta = "T" if trans_b else "N"
    cdef char* tb = "T" if trans_a else "N"
    cdef floating one = 1, zero = 0
    if floating is float:
        sgemm(ta, tb, &n, &m, &k, &one, <float*>B, &ldb, <float*>A, &lda, &zero, <float*>C, &n)
    else:
        dgemm(ta, tb, &n, &m, &k, &one, <double*>B, &ldb, <double*>A, &lda, &zero, <double*>C, &n)


def matmul(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] out):
    with nogil:
        gemm(False, False, A.shape[0], B.shape[1], A.shape[1], &A[0, 0], A.shape[1],
             &B[0, 0], B.shape[1], &out[0, 0])


def matmul_blas(const floating[:, ::1] A, const floating[:, ::1] B, floating[:, ::1] out):
    cdef int m = A.shape[0], n = B.shape[1], k = A.shape[1]
    cdef floating one = 1, zero = 0
    with nogil:
        if floating is float:
            sgemm("N", "N", &n, &m, &k, &one, <float*>&B[0, 0], &n, <float*>&A[0, 0], &k,
                  &zero, <float*>&out[0, 0], &n)
        else:
            dgemm("N", "N", &n, &m, &k, &one, <double*>&B[0, 0], &n, <double*>&A[0, 0], &k,
                  &zero, <double*>&out[0, 0], &n)


# The own blocked product (matmul_blocked), GotoBLAS-style. B is packed KC rows at a time
# into panels NR columns wide (contiguous, zero-padded: the packed block stays in L2), the
# MR rows of A a tile needs are packed interleaved (they stay in L1), and each MR x NR tile
# of the product is summed in 2 * MR vector registers, then stored into (or, after the
# first block of K, added to) C straight from them.
#
# The tile is C with GCC/Clang vector extensions (setup.py's flags assume those compilers
# already), not a Cython loop: written as loops, GCC -O3 vectorises the reduction over p
# (gathers, sums kept in order: 2 GFLOP/s), or, with the column loop outermost, does the
# right thing only when it sees kc as a constant.
#
# At 256x784x512 float32 on 2 cores: 60 GFLOP/s with B packed by one thread and every
# tile stored through a scratch tile; 97-99 with the packing shared by the threads and
# full tiles stored from the registers (numpy.matmul: 136-143 in the same runs).
cdef extern from *:
    """
    #define FASTMLP_MR 6
    #define FASTMLP_TILE(T, NAME)                                                       \
    static void NAME(const T* a_pack, const T* panel, int kc, T* c, int ldc,            \
                     int accumulate) {                                                  \
        typedef T vec __attribute__((vector_size(32), aligned(sizeof(T))));            \
        enum { LANES = 32 / sizeof(T) };                                                \
        vec lo[FASTMLP_MR] = {0}, hi[FASTMLP_MR] = {0};                                 \
        for (int p = 0; p < kc; p++) {                                                  \
            vec b_lo = *(const vec*)(panel + 2 * LANES * p);                            \
            vec b_hi = *(const vec*)(panel + 2 * LANES * p + LANES);                    \
            for (int r = 0; r < FASTMLP_MR; r++) {                                      \
                T a = a_pack[FASTMLP_MR * p + r];                                       \
                lo[r] += a * b_lo;                                                      \
                hi[r] += a * b_hi;                                                      \
            }                                                                           \
        }                                                                               \
        for (int r = 0; r < FASTMLP_MR; r++) {                                          \
            vec* row = (vec*)(c + r * ldc);                                             \
            if (accumulate) {                                                           \
                lo[r] += row[0];                                                        \
                hi[r] += row[1];                                                        \
            }                                                                           \
            row[0] = lo[r];                                                             \
            row[1] = hi[r];                                                             \
        }                                                                               \
    }
    FASTMLP_TILE(float, fastmlp_tile_f32)
    FASTMLP_TILE(double, fastmlp_tile_f64)
    """
    enum: MR "FASTMLP_MR"
    void tile_f32 "fastmlp_tile_f32"(const float* a_pack, const float* panel, int kc, float* c,
                                     int ldc, bint accumulate) noexcept nogil
    void tile_f64 "fastmlp_tile_f64"(const double* a_pack, const double* panel, int kc,
                                     double* c, int ldc, bint accumulate) noexcept nogil

cdef enum:
    NR_MAX = 16
    KC = 256


cdef inline int tile_cols(const floating* like) noexcept nogil:
    """NR: two 256-bit vectors of floating."""
    return 16 if floating is float else 8


cdef void pack_panel(const floating* B, int ldb, int kc, int n, int panel,
                     floating* packed) noexcept nogil:
    """packed[panel, p, j] = B[p, panel * NR + j], zero past column n."""
    cdef int nr = tile_cols(B), j0 = panel * nr, width = min(nr, n - j0), p, j
    cdef floating* dst
    for p in range(kc):
        dst = packed + (panel * kc + p) * nr
        for j in range(width):
            dst[j] = B[p * ldb + j0 + j]
        for j in range(width, nr):
            dst[j] = 0


cdef void pack_rows(const floating* A, int lda, int rows, int kc, floating* packed) noexcept nogil:
    """packed[p, r] = A[r, p], zero for r >= rows: the tile reads MR values at once."""
    cdef int p, r
    for p in range(kc):
        for r in range(MR):
            packed[p * MR + r] = A[r * lda + p] if r < rows else 0


cdef inline void tile(const floating* a_pack, const floating* panel, int kc, floating* c,
                      int ldc, bint accumulate) noexcept nogil:
    if floating is float:
        tile_f32(a_pack, panel, kc, c, ldc, accumulate)
    else:
        tile_f64(a_pack, panel, kc, c, ldc, accumulate)


cdef void row_block_product(const floating* A, int lda, int rows, const floating* packed,
                            int kc, int n, floating* C, bint accumulate) noexcept nogil:
    """C[:rows, :n] (+)= A[:rows, :kc] @ the packed block of B, one panel at a time; the
    packed rows of A, and the tile at the edges of C, live on this thread's stack."""
    cdef floating a_pack[MR * KC]
    cdef floating edge[MR * NR_MAX]
    cdef int nr = tile_cols(A), panel, cols, r, j
    pack_rows(A, lda, rows, kc, a_pack)
    for panel in range((n + nr - 1) // nr):
        cols = min(nr, n - panel * nr)
        if rows == MR and cols == nr:
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
    """Own blocked product (see the tile above). K is split into equal blocks of at most
    KC; each block of B is packed, by all threads, into one buffer (malloc'd once per call
    and freed on every path); then row blocks of MR run in parallel (OpenMP) over it."""
    cdef int m = A.shape[0], k = A.shape[1], n = B.shape[1], nr = tile_cols(&A[0, 0])
    cdef int depth = max(1, (k + KC - 1) // KC), kc = (k + depth - 1) // depth
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
            for i0 in prange(0, m, MR, schedule="static"):
                row_block_product(&A[i0, p0], k, min(MR, m - i0), packed, width, n,
                                  &out[i0, 0], block > 0)
    free(packed)


# ---------------------------------------------------------------- activations

cdef inline floating sigmoid(floating z) noexcept nogil:
    cdef floating e
    if z >= 0:
        return 1 / (1 + exp(-z))
    e = exp(z)
    return e / (1 + e)


cdef void softmax_rows(floating* Z, int rows, int cols) noexcept nogil:
    """Row-wise softmax in place."""
    cdef int i, j
    cdef floating peak, total
    for i in range(rows):
        peak = Z[i * cols]
        for j in range(cols):
            peak = max(peak, Z[i * cols + j])
        total = 0
        for j in range(cols):
            Z[i * cols + j] = exp(Z[i * cols + j] - peak)
            total += Z[i * cols + j]
        for j in range(cols):
            Z[i * cols + j] /= total


cdef void bias_activation(floating* Z, const floating* b, int rows, int cols, int act) noexcept nogil:
    """Z = f_act(Z + b) in place (b may be NULL: no bias); the branch sits outside the loops."""
    cdef int i, j
    cdef floating v
    cdef floating* row
    for i in range(rows):
        row = Z + i * cols
        if b != NULL and act == RELU:  # the common hidden layer, in one pass
            for j in range(cols):
                v = row[j] + b[j]
                row[j] = v if v > 0 else 0
            continue
        if b != NULL:
            for j in range(cols):
                row[j] += b[j]
        if act == RELU:
            for j in range(cols):
                v = row[j]
                row[j] = v if v > 0 else 0
        elif act == SIGMOID:
            for j in range(cols):
                row[j] = sigmoid(row[j])
        elif act == TANH:
            for j in range(cols):
                row[j] = tanh(row[j])
    if act == SOFTMAX:
        softmax_rows(Z, rows, cols)


cdef void activation_grad(const floating* A, floating* dA, int rows, int cols, int act) noexcept nogil:
    """dA *= f'(z) from the saved output A, in place (softmax: the row Jacobian product)."""
    cdef int i, j, size = rows * cols
    cdef floating s
    if act == RELU:
        for i in range(size):
            dA[i] = dA[i] if A[i] > 0 else 0
    elif act == SIGMOID:
        for i in range(size):
            dA[i] = dA[i] * A[i] * (1 - A[i])
    elif act == TANH:
        for i in range(size):
            dA[i] = dA[i] * (1 - A[i] * A[i])
    elif act == SOFTMAX:
        for i in range(rows):
            s = 0
            for j in range(cols):
                s += dA[i * cols + j] * A[i * cols + j]
            for j in range(cols):
                dA[i * cols + j] = A[i * cols + j] * (dA[i * cols + j] - s)


def activation_forward(int act, const floating[:, ::1] Z, floating[:, ::1] out):
    cdef Py_ssize_t size = Z.shape[0] * Z.shape[1], i
    with nogil:
        if <const void*>&out[0, 0] != <const void*>&Z[0, 0]:
            for i in range(size):
                (&out[0, 0])[i] = (&Z[0, 0])[i]
        bias_activation(&out[0, 0], <floating*>NULL, Z.shape[0], Z.shape[1], act)


def activation_backward(int act, const floating[:, ::1] A, const floating[:, ::1] dA,
                        floating[:, ::1] out):
    cdef Py_ssize_t size = A.shape[0] * A.shape[1], i
    with nogil:
        if <const void*>&out[0, 0] != <const void*>&dA[0, 0]:
            for i in range(size):
                (&out[0, 0])[i] = (&dA[0, 0])[i]
        activation_grad(&A[0, 0], &out[0, 0], A.shape[0], A.shape[1], act)


cdef void linear_forward_c(const floating* X, const floating* W, const floating* b, int n,
                           int fan_in, int fan_out, int act, floating* out) noexcept nogil:
    if takes_narrow_k(n, fan_out, fan_in) and (act == RELU or act == IDENTITY):
        narrow_k(False, n, fan_out, fan_in, X, fan_in, W, out, b,
                 ADD_BIAS_RELU if act == RELU else ADD_BIAS)
        return
    gemm(False, False, n, fan_out, fan_in, X, fan_in, W, fan_out, out)
    bias_activation(out, b, n, fan_out, act)  # bias and activation in one pass


def linear_forward(const floating[:, ::1] X, const floating[:, ::1] W, const floating[:] b,
                   int act, floating[:, ::1] out):
    with nogil:
        linear_forward_c(&X[0, 0], &W[0, 0], &b[0], X.shape[0], X.shape[1], W.shape[1], act,
                         &out[0, 0])


cdef void narrow_m_transposed_a(int m, int n, int k, const floating* AT, int lda,
                                const floating* B, floating* C, floating* column_sums) noexcept nogil:
    """C = AT.T @ B for few rows m of C (AT (k, m) row-major: X in dW = X.T @ dZ, B = dZ
    (k, n) contiguous), and B's column sums (db), in one pass over B, four rows at a time.
    At X.T @ dH, 300x2 by 300x100 float32: 3.9 us, against 7.6 us for the i-k-j product loop
    then a pass of sums."""
    cdef int i, j, p = 0
    cdef floating a0, a1, a2, a3
    cdef const floating* b0
    cdef const floating* b1
    cdef const floating* b2
    cdef const floating* b3
    cdef floating* c
    memset(C, 0, m * n * sizeof(floating))
    memset(column_sums, 0, n * sizeof(floating))
    while p + 4 <= k:
        b0, b1, b2, b3 = B + p * n, B + (p + 1) * n, B + (p + 2) * n, B + (p + 3) * n
        for i in range(m):
            a0, a1 = AT[p * lda + i], AT[(p + 1) * lda + i]
            a2, a3 = AT[(p + 2) * lda + i], AT[(p + 3) * lda + i]
            c = C + i * n
            for j in range(n):
                c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
        for j in range(n):
            column_sums[j] += b0[j] + b1[j] + b2[j] + b3[j]
        p += 4
    for p in range(p, k):
        b0 = B + p * n
        for i in range(m):
            a0, c = AT[p * lda + i], C + i * n
            for j in range(n):
                c[j] += a0 * b0[j]
        for j in range(n):
            column_sums[j] += b0[j]


cdef bint linear_backward_c(const floating* X, const floating* W, const floating* dZ, int n,
                            int fan_in, int fan_out, floating* dW, floating* db, floating* dX,
                            const floating* relu_out) noexcept nogil:
    """dW, db and dX (may be NULL); relu_out (may be NULL): the output of the relu before
    this layer, whose derivative dX is then multiplied by where the product loop can do it
    in its own pass (dZ @ W.T for few outputs: at the spiral's dH, dW2 + dH + relu'
    10.2 us, against 11.6 us in a pass more). Returns whether it did."""
    cdef int i, j
    cdef const floating* row
    cdef long long size = <long long>n * fan_in * fan_out
    if fan_in <= NARROW_K and fan_out >= MIN_LOOP_COLUMNS and TINY_GEMM <= size < NARROW_GEMM:
        narrow_m_transposed_a(fan_in, fan_out, n, X, fan_in, dZ, dW, db)
    else:
        gemm(True, False, fan_in, fan_out, n, X, fan_in, dZ, fan_out, dW)
        memset(db, 0, fan_out * sizeof(floating))
        for i in range(n):
            row = dZ + i * fan_out
            for j in range(fan_out):
                db[j] += row[j]
    if dX == NULL:
        return False
    if relu_out != NULL and takes_narrow_k(n, fan_in, fan_out):
        narrow_k_transposed_b(False, n, fan_in, fan_out, dZ, fan_out, W, fan_out, dX, relu_out,
                              GATED)
        return True
    gemm(False, True, n, fan_in, fan_out, dZ, fan_out, W, fan_out, dX)
    return False


def linear_backward(const floating[:, ::1] X, const floating[:, ::1] W,
                    const floating[:, ::1] dZ, floating[:, ::1] dW, floating[:] db,
                    floating[:, ::1] dX=None):
    cdef floating* dX_ptr = NULL if dX is None else &dX[0, 0]
    with nogil:
        linear_backward_c(&X[0, 0], &W[0, 0], &dZ[0, 0], X.shape[0], X.shape[1], W.shape[1],
                          &dW[0, 0], &db[0], dX_ptr, <floating*>NULL)


# ---------------------------------------------------------------- losses

# exp in a form GCC vectorises (libm's exp is a call per entry: 900 exp calls and 300 log
# calls were ~5 of softmax-CE's ~7 us at 300x3 float32). Cody-Waite reduction: x = n ln2 + r,
# |r| <= ln2 / 2, with ln2 split so that n * LN2_HI is exact; exp(r) by its Taylor series
# (degree 7 is float32 precision, 13 double); 2**n from the exponent bits. n rounds by the
# magic-number trick: x * log2(e) + MAGIC leaves round(n) + bias in the low mantissa bits of
# the sum, so no float-to-int conversion is needed (AVX2 has none for int64).
cdef extern from *:
    """
    #define FASTMLP_LOG2E 1.4426950408889634
    #define FASTMLP_LN2_HI 0.693145751953125
    #define FASTMLP_LN2_LO 1.428606820309417232e-06
    #define FASTMLP_MAGIC_F32 (12582912.0f + 127.0f)
    #define FASTMLP_MAGIC_F64 (6755399441055744.0 + 1023.0)
    """
    double LOG2E "FASTMLP_LOG2E"
    double LN2_HI "FASTMLP_LN2_HI"
    double LN2_LO "FASTMLP_LN2_LO"
    float MAGIC_F32 "FASTMLP_MAGIC_F32"
    double MAGIC_F64 "FASTMLP_MAGIC_F64"


cdef inline floating exp_nonpositive(floating x) noexcept nogil:
    """exp(x) for x <= 0 (-inf and results below the normal range give 0, NaN gives NaN),
    branch-free so that a loop of it vectorises. Constants are typed floating: a bare
    literal is a C double, which would turn float arithmetic into double."""
    cdef floating one = 1, t, n, r, p
    if floating is float:
        t = x * <float>LOG2E + MAGIC_F32
        n = t - MAGIC_F32
    else:
        t = x * LOG2E + MAGIC_F64
        n = t - MAGIC_F64
    r = (x - n * <floating>LN2_HI) - n * <floating>LN2_LO
    if floating is float:
        p = one + r * (one + r * (<float>(1 / 2.) + r * (<float>(1 / 6.) + r * (<float>(1 / 24.)
            + r * (<float>(1 / 120.) + r * (<float>(1 / 720.) + r * <float>(1 / 5040.)))))))
        return zero_where(n < <float>-126, p * pow2_f32(t))  # NaN: false, and p is NaN
    else:
        p = 1 + r * (1 + r * (1 / 2. + r * (1 / 6. + r * (1 / 24. + r * (1 / 120.
            + r * (1 / 720. + r * (1 / 5040. + r * (1 / 40320. + r * (1 / 362880.
            + r * (1 / 3628800. + r * (1 / 39916800. + r * (1 / 479001600.
            + r * (1 / 6227020800.)))))))))))))
        return zero_where(n < -1022, p * pow2_f64(t))


cdef double softmax_ce_c(const floating* Z, const floating* Y, floating* P, floating* dZ,
                         int rows, int cols) noexcept nogil:
    """Three passes: logits less the row peak (into dZ, as scratch), one vectorised exp over
    all entries, then per row the normalisation, the loss and the gradient."""
    cdef int i, j, size = rows * cols
    cdef double loss = 0, log_total
    cdef floating peak, total, scale, inv_rows = (<floating>1) / rows
    cdef floating* shifted = dZ
    for i in range(rows):
        peak = Z[i * cols]
        for j in range(cols):
            peak = max(peak, Z[i * cols + j])
        for j in range(cols):
            shifted[i * cols + j] = Z[i * cols + j] - peak
    for i in range(size):
        P[i] = exp_nonpositive(shifted[i])
    for i in range(rows):
        total = 0
        for j in range(cols):
            total += P[i * cols + j]
        log_total, scale = (logf(total) if floating is float else log(total)), 1 / total
        for j in range(cols):
            P[i * cols + j] *= scale
            loss += Y[i * cols + j] * (log_total - shifted[i * cols + j])
            dZ[i * cols + j] = (P[i * cols + j] - Y[i * cols + j]) * inv_rows
    return loss / rows


cdef double sigmoid_ce_c(const floating* Z, const floating* Y, floating* P, floating* dZ,
                         int rows, int cols) noexcept nogil:
    cdef int i, size = rows * cols
    cdef double loss = 0, z
    for i in range(size):
        z = Z[i]
        P[i] = sigmoid(Z[i])
        loss += max(z, 0.0) - z * Y[i] + log1p(exp(-fabs(z)))
        dZ[i] = (P[i] - Y[i]) / size
    return loss / size


cdef double pointwise_loss_c(int loss, const floating* P, const floating* Y, floating* dP,
                             int size) noexcept nogil:
    """MSE or L1 over all entries, with the gradient into dP."""
    cdef int i
    cdef double total = 0, d
    for i in range(size):
        d = P[i] - Y[i]
        if loss == MSE:
            total += d * d
            dP[i] = 2 * d / size
        else:
            total += fabs(d)
            dP[i] = ((d > 0) - (d < 0)) / <double>size
    return total / size


cdef double output_loss_c(int out_act, int loss, const floating* Z, const floating* Y, floating* P,
                          floating* dZ, int rows, int cols) noexcept nogil:
    cdef int i
    cdef double value
    if loss == CROSS_ENTROPY and out_act == SOFTMAX:
        return softmax_ce_c(Z, Y, P, dZ, rows, cols)
    if loss == CROSS_ENTROPY and out_act == SIGMOID:
        return sigmoid_ce_c(Z, Y, P, dZ, rows, cols)
    for i in range(rows * cols):
        P[i] = Z[i]
    bias_activation(P, <floating*>NULL, rows, cols, out_act)
    value = pointwise_loss_c(loss, P, Y, dZ, rows * cols)
    activation_grad(P, dZ, rows, cols, out_act)
    return value


def softmax_cross_entropy(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] P,
                          floating[:, ::1] dZ):
    cdef double value
    with nogil:
        value = softmax_ce_c(&Z[0, 0], &Y[0, 0], &P[0, 0], &dZ[0, 0], Z.shape[0], Z.shape[1])
    return value


def sigmoid_cross_entropy(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] P,
                          floating[:, ::1] dZ):
    cdef double value
    with nogil:
        value = sigmoid_ce_c(&Z[0, 0], &Y[0, 0], &P[0, 0], &dZ[0, 0], Z.shape[0], Z.shape[1])
    return value


def mse_loss(const floating[:, ::1] P, const floating[:, ::1] Y, floating[:, ::1] dP):
    cdef double value
    with nogil:
        value = pointwise_loss_c(MSE, &P[0, 0], &Y[0, 0], &dP[0, 0], P.shape[0] * P.shape[1])
    return value


def l1_loss(const floating[:, ::1] P, const floating[:, ::1] Y, floating[:, ::1] dP):
    cdef double value
    with nogil:
        value = pointwise_loss_c(L1, &P[0, 0], &Y[0, 0], &dP[0, 0], P.shape[0] * P.shape[1])
    return value


def output_loss(int out_act, int loss, const floating[:, ::1] Z, const floating[:, ::1] Y,
                floating[:, ::1] P, floating[:, ::1] dZ):
    cdef double value
    with nogil:
        value = output_loss_c(out_act, loss, &Z[0, 0], &Y[0, 0], &P[0, 0], &dZ[0, 0],
                         Z.shape[0], Z.shape[1])
    return value


cdef double penalty_c(const floating* W, double l1, double l2, floating* dW, int size) noexcept nogil:
    cdef int i
    cdef double value = 0, w
    for i in range(size):
        w = W[i]
        value += l1 * fabs(w) + 0.5 * l2 * w * w
        dW[i] += l1 * ((w > 0) - (w < 0)) + l2 * w
    return value


def penalty(const floating[:, ::1] W, double l1, double l2, floating[:, ::1] dW):
    cdef double value
    with nogil:
        value = penalty_c(&W[0, 0], l1, l2, &dW[0, 0], W.shape[0] * W.shape[1])
    return value


cdef void dropout_c(const floating* A, const floating* U, double p, floating* out, int size) noexcept nogil:
    cdef int i
    cdef double keep = 1 - p
    for i in range(size):
        out[i] = A[i] / keep if U[i] >= p else 0


def dropout_apply(const floating[:, ::1] A, const floating[:, ::1] U, double p,
                  floating[:, ::1] out):
    with nogil:
        dropout_c(&A[0, 0], &U[0, 0], p, &out[0, 0], A.shape[0] * A.shape[1])


# ---------------------------------------------------------------- optimizer updates
# The rules live in the cdef functions, shared by the update kernels and network_train_step.
# A state of several rows holds row r at state + r * n. Each computes in the parameter's
# precision, its scalars rounded to it first, as the NumPy reference does (NEP 50): in
# float32 the sqrt and the division vectorise twice as wide.

cdef inline floating root(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void sgd_c(floating* param, const floating* grad, floating* momentum_buf, Py_ssize_t n,
                double lr, double momentum, double dampening, bint nesterov,
                double weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, rate = lr, wd = weight_decay, mom = momentum, undamped = 1 - dampening
    for i in range(n):
        g = grad[i] + wd * param[i]
        if momentum != 0:
            momentum_buf[i] = mom * momentum_buf[i] + undamped * g
            g = g + mom * momentum_buf[i] if nesterov else momentum_buf[i]
        param[i] -= rate * g


cdef void rmsprop_c(floating* param, const floating* grad, floating* state, Py_ssize_t n,
                    double lr, double alpha, double eps, double momentum, bint centered,
                    double weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, v, step, rate = lr, decay = alpha, rest = 1 - alpha, eps_ = eps
    cdef floating mom = momentum, wd = weight_decay
    cdef floating* square_avg = state
    cdef floating* grad_avg = state + n
    cdef floating* momentum_buf = state + 2 * n
    if not centered and momentum == 0:  # the default, as its own branch-free loop
        for i in range(n):
            g = grad[i] + wd * param[i]
            square_avg[i] = decay * square_avg[i] + rest * g * g
            param[i] -= rate * (g / (root(square_avg[i]) + eps_))
        return
    for i in range(n):
        g = grad[i] + wd * param[i]
        square_avg[i] = decay * square_avg[i] + rest * g * g
        v = square_avg[i]
        if centered:
            grad_avg[i] = decay * grad_avg[i] + rest * g
            v = v - grad_avg[i] * grad_avg[i]
        step = g / (root(v) + eps_)
        if momentum > 0:
            momentum_buf[i] = mom * momentum_buf[i] + step
            step = momentum_buf[i]
        param[i] -= rate * step


cdef void adam_c(floating* param, const floating* grad, floating* state, Py_ssize_t n,
                 double step_size, double beta1, double beta2, double eps,
                 double bias_correction2_sqrt, double weight_decay, bint amsgrad) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, wd = weight_decay, b1 = beta1, b2 = beta2, rest1 = 1 - beta1
    cdef floating rest2 = 1 - beta2, size = step_size, correction = bias_correction2_sqrt
    cdef floating eps_ = eps
    cdef floating* exp_avg = state
    cdef floating* exp_avg_sq = state + n
    cdef floating* max_exp_avg_sq = state + 2 * n
    cdef floating* second = exp_avg_sq
    # Three loops, each without a branch, so that GCC vectorises them (as numba's).
    for i in range(n):
        g = grad[i] + wd * param[i]
        exp_avg[i] = b1 * exp_avg[i] + rest1 * g
        exp_avg_sq[i] = b2 * exp_avg_sq[i] + rest2 * g * g
    if amsgrad:
        for i in range(n):
            max_exp_avg_sq[i] = max(max_exp_avg_sq[i], exp_avg_sq[i])
        second = max_exp_avg_sq
    for i in range(n):
        param[i] -= size * exp_avg[i] / (root(second[i]) / correction + eps_)


cdef void adagrad_c(floating* param, const floating* grad, floating* state_sum, Py_ssize_t n,
                    double clr, double eps, double weight_decay) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, rate = clr, eps_ = eps, wd = weight_decay
    for i in range(n):
        g = grad[i] + wd * param[i]
        state_sum[i] += g * g
        param[i] -= rate * g / (root(state_sum[i]) + eps_)


def sgd_update(floating[::1] param, const floating[::1] grad, floating[::1] momentum_buf,
               double lr, double momentum, double dampening, bint nesterov, double weight_decay):
    with nogil:
        sgd_c(&param[0], &grad[0], &momentum_buf[0], param.shape[0], lr, momentum, dampening,
              nesterov, weight_decay)


def rmsprop_update(floating[::1] param, const floating[::1] grad, floating[:, ::1] state,
                   double lr, double alpha, double eps, double momentum, bint centered,
                   double weight_decay):
    with nogil:
        rmsprop_c(&param[0], &grad[0], &state[0, 0], param.shape[0], lr, alpha, eps, momentum,
                  centered, weight_decay)


def adam_update(floating[::1] param, const floating[::1] grad, floating[:, ::1] state,
                double step_size, double beta1, double beta2, double eps,
                double bias_correction2_sqrt, double weight_decay, bint amsgrad):
    with nogil:
        adam_c(&param[0], &grad[0], &state[0, 0], param.shape[0], step_size, beta1, beta2, eps,
               bias_correction2_sqrt, weight_decay, amsgrad)


def adagrad_update(floating[::1] param, const floating[::1] grad, floating[::1] state_sum,
                   double clr, double eps, double weight_decay):
    with nogil:
        adagrad_c(&param[0], &grad[0], &state_sum[0], param.shape[0], clr, eps, weight_decay)


# ---------------------------------------------------------------- whole network

cdef inline long long at(const long long* layers, int l, int column) noexcept nogil:
    """layers[l, column] of the (L, 9) layers table."""
    return layers[l * 9 + column]


cdef void forward_c(const floating* X, const floating* theta, floating* work,
                    const long long* layers, int n_layers, int n, int hidden_act,
                    double dropout) noexcept nogil:
    cdef int l, last = n_layers - 1
    cdef const floating* inp = X
    cdef floating* out
    for l in range(last + 1):
        out = work + (at(layers, l, COL_Z) if l == last else at(layers, l, COL_A))
        linear_forward_c(inp, theta + at(layers, l, COL_W), theta + at(layers, l, COL_B), n,
                         at(layers, l, FAN_IN), at(layers, l, FAN_OUT),
                         IDENTITY if l == last else hidden_act, out)
        if l < last and at(layers, l, COL_U) >= 0:
            dropout_c(out, work + at(layers, l, COL_U), dropout, work + at(layers, l, COL_OUT),
                      n * at(layers, l, FAN_OUT))
        inp = work + at(layers, l, COL_OUT)


def network_forward(const floating[:, ::1] X, const floating[::1] theta, floating[::1] work,
                    const long long[:, ::1] layers, const long long[::1] spec):
    cdef int n = X.shape[0], last = layers.shape[0] - 1, size
    cdef Py_ssize_t i
    cdef floating* P
    with nogil:
        forward_c(&X[0, 0], &theta[0], &work[0], &layers[0, 0], layers.shape[0], n, spec[0], 0.0)
        size = n * layers[last, FAN_OUT]
        P = &work[0] + layers[last, COL_A]
        for i in range(size):
            P[i] = work[layers[last, COL_Z] + i]
        bias_activation(P, <floating*>NULL, n, layers[last, FAN_OUT], spec[1])


# ---------------------------------------------------------------- one narrow hidden layer
# The numba backend's fused step for one ReLU hidden layer between a few inputs and a few
# classes (spiral: 2-100-3, 300 samples); see its comments there. The layer-by-layer step
# spends its time on rows of 2 or 3 numbers; this one stores the hidden activations, the
# logits and their gradient transposed (units x samples) in their work regions, so every
# loop runs along a long contiguous row of samples, and it makes one pass over the hidden
# units forward and one backward.

cdef bint runs_narrow_pair(const long long* layers, int n_layers, const long long* spec,
                           int n) noexcept nogil:
    """Whether narrow_pair_c computes this step: softmax cross-entropy on one ReLU hidden
    layer, at most NARROW_K inputs and classes, no dropout, and a batch that fills vectors
    and whose rows fit the stack scratch."""
    if n_layers != 2:
        return False
    cdef int kin = at(layers, 0, FAN_IN), kout = at(layers, 1, FAN_OUT)
    return (spec[0] == RELU and spec[1] == SOFTMAX and spec[2] == CROSS_ENTROPY
            and at(layers, 0, COL_U) < 0 and kin <= NARROW_K and kout <= NARROW_K
            and n >= MIN_LOOP_COLUMNS and max(kin, kout + 2) * n <= STACK_ITEMS)


cdef double softmax_ce_transposed(const floating* ZT, const floating* Y, floating* P,
                                  floating* dZT, int k, int n) noexcept nogil:
    """softmax_ce_c on logits stored transposed, ZT (k classes, n samples): the gradient
    into dZT transposed, the probabilities into P as the contract has them (n, k: fit reads
    them). Every loop runs along the samples, through row pointers (under Python's -fwrapv,
    which setup.py now undoes, an index j * n + i may wrap, and GCC did not vectorise it:
    5.3 us, against 2.7 us at the spiral),
    none with a sum across them (GCC keeps such a sum in order, in scalar code) but row_sum."""
    cdef floating scratch[STACK_ITEMS]  # exp of each class, each sample's log-sum-exp, total
    cdef floating* lse = scratch + k * n
    cdef floating* total = lse + n
    cdef floating* loss = total  # each sample's loss, once the totals are used
    cdef floating* e
    cdef floating* d
    cdef floating y, inv_n = (<floating>1) / n
    cdef const floating* z
    cdef int i, j
    for i in range(n):
        lse[i] = ZT[i]  # the peak, first
    for j in range(1, k):
        z = ZT + j * n
        for i in range(n):
            lse[i] = max(lse[i], z[i])
    for i in range(n):
        total[i] = 0
    for j in range(k):
        z, e = ZT + j * n, scratch + j * n
        for i in range(n):
            e[i] = exp_nonpositive(z[i] - lse[i])
            total[i] += e[i]
    for i in range(n):
        lse[i] += logf(total[i]) if floating is float else log(total[i])
        total[i] = 1 / total[i]
    for j in range(k):
        e = scratch + j * n
        for i in range(n):
            e[i] *= total[i]  # the probabilities, transposed
    for i in range(n):
        loss[i] = 0
    for j in range(k):
        z, e, d = ZT + j * n, scratch + j * n, dZT + j * n
        for i in range(n):
            y = Y[i * k + j]
            P[i * k + j] = e[i]
            d[i] = (e[i] - y) * inv_n
            loss[i] += y * (lse[i] - z[i])
    return row_sum(loss, n) / n


# The step's loops over the samples, in C with vector extensions as the dots above: the
# backward pass sums along the samples, which GCC does not vectorise for floats without
# -ffast-math (it keeps each sum in order), and Cython could not make GCC specialise its
# loops for constant kin and kout (a Cython forward ran 33 us, scalar: its kin and kout
# tests stayed in the loop). Each kernel is inlined into a switch over (kin, kout), so that
# the loops over them unroll and the sums stay in registers. A row's last, partial vector
# is the row's last full one (n >= MIN_LOOP_COLUMNS), its lanes done already masked to zero
# where they would be added twice (loading a partial vector lane by lane, through the stack,
# made the spiral's backward pass 17.0 us, against 9.7 us).
cdef extern from *:
    """
    #define FASTMLP_INLINE static inline __attribute__((always_inline))
    #define FASTMLP_PAIR_HELPERS(T, S)                                                  \
    typedef T S##_vec __attribute__((vector_size(32), aligned(sizeof(T))));            \
    enum { S##_LANES = 32 / sizeof(T) };                                                \
    FASTMLP_INLINE S##_vec S##_load(const T* p) {                                       \
        return *(const S##_vec*)p;                                                      \
    }                                                                                   \
    FASTMLP_INLINE void S##_store(T* p, S##_vec v) {                                    \
        *(S##_vec*)p = v;                                                               \
    }                                                                                   \
    typedef T S##_half __attribute__((vector_size(16), aligned(sizeof(T))));           \
    union S##_halves { S##_vec whole; S##_half part[2]; };                              \
    /* v's lanes summed, its halves added first as the dots do: four adds in a chain,  \
       not seven, for the backward pass's six sums a unit (spiral step 21.6-22.3 us,   \
       20.5-20.7 us) */                                                                 \
    FASTMLP_INLINE T S##_sum(S##_vec v) {                                               \
        union S##_halves u = {v};                                                       \
        S##_half half = u.part[0] + u.part[1];                                          \
        T total = 0;                                                                    \
        for (int l = 0; l < S##_LANES / 2; l++)                                         \
            total += half[l];                                                           \
        return total;                                                                   \
    }                                                                                   \
    FASTMLP_INLINE S##_vec S##_where_positive(S##_vec v, S##_vec gate) {  /* else +0 */ \
        const S##_vec zero = {0};                                                       \
        return (S##_vec)((__typeof__(gate > zero))v & (gate > zero));                   \
    }                                                                                   \
    FASTMLP_INLINE S##_vec S##_from_lane(S##_vec v, int skip) {  /* lanes < skip: +0 */ \
        S##_vec lane;                                                                   \
        for (int l = 0; l < S##_LANES; l++)                                             \
            lane[l] = l;                                                                \
        return S##_where_positive(v, lane - (T)(skip - 0.5));                           \
    }
    #define FASTMLP_PAIR_FORWARD(T, S)                                                  \
    /* The samples i.. of `units` hidden units: ReLU of a[q] . x + bias[q] into rows   \
       h[q], and w[j] . those added into the logit rows. */                             \
    FASTMLP_INLINE void S##_forward_columns(                                            \
            int kin, int kout, int units, T a[4][4], const T* bias, T w[4][4],         \
            const T* XT, T** h, T* ZT, int n, int i, int skip) {                        \
        S##_vec x[4], v[4];                                                             \
        for (int c = 0; c < kin; c++)                                                   \
            x[c] = S##_load(XT + (long)c * n + i);                                      \
        for (int q = 0; q < units; q++) {                                               \
            S##_vec s = bias[q] + a[q][0] * x[0];                                       \
            for (int c = 1; c < kin; c++)                                               \
                s += a[q][c] * x[c];                                                    \
            v[q] = S##_where_positive(s, s);                                            \
            S##_store(h[q] + i, v[q]);                                                  \
            if (skip)  /* lanes done already: stored again alike, added once */         \
                v[q] = S##_from_lane(v[q], skip);                                       \
        }                                                                               \
        for (int j = 0; j < kout; j++) {                                                \
            S##_vec z = S##_load(ZT + (long)j * n + i);                                 \
            for (int q = 0; q < units; q++)                                             \
                z += w[j][q] * v[q];                                                    \
            S##_store(ZT + (long)j * n + i, z);                                         \
        }                                                                               \
    }                                                                                   \
    /* Hidden units p..p+units: their weights read once into locals, then the samples. */ \
    FASTMLP_INLINE void S##_forward_units(                                              \
            int kin, int kout, int units, int p, const T* XT, const T* W1, const T* b1, \
            const T* W2, T* HT, T* ZT, int hidden, int n) {                             \
        T a[4][4], bias[4], w[4][4], *h[4];                                             \
        for (int q = 0; q < units; q++) {                                               \
            h[q] = HT + (long)(p + q) * n;                                              \
            bias[q] = b1[p + q];                                                        \
            for (int c = 0; c < kin; c++)                                               \
                a[q][c] = W1[c * hidden + p + q];                                       \
            for (int j = 0; j < kout; j++)                                              \
                w[j][q] = W2[(p + q) * kout + j];                                       \
        }                                                                               \
        int i = 0;                                                                      \
        for (; i + S##_LANES <= n; i += S##_LANES)                                      \
            S##_forward_columns(kin, kout, units, a, bias, w, XT, h, ZT, n, i, 0);     \
        if (i < n)                                                                      \
            S##_forward_columns(kin, kout, units, a, bias, w, XT, h, ZT, n, n - S##_LANES, \
                                i - (n - S##_LANES));                                   \
    }                                                                                   \
    /* HT = relu(W1.T @ XT + b1) and ZT = W2.T @ HT + b2, four hidden units a pass. */  \
    FASTMLP_INLINE void S##_forward(int kin, int kout, const T* XT, const T* W1,        \
                                    const T* b1, const T* W2, const T* b2, T* HT,       \
                                    T* ZT, int hidden, int n) {                         \
        for (int j = 0; j < kout; j++)                                                  \
            for (int i = 0; i < n; i++)                                                 \
                ZT[(long)j * n + i] = b2[j];                                            \
        int p = 0;                                                                      \
        for (; p + 4 <= hidden; p += 4)                                                 \
            S##_forward_units(kin, kout, 4, p, XT, W1, b1, W2, HT, ZT, hidden, n);      \
        for (; p < hidden; p++)                                                         \
            S##_forward_units(kin, kout, 1, p, XT, W1, b1, W2, HT, ZT, hidden, n);      \
    }
    #define FASTMLP_PAIR_BACKWARD(T, S)                                                 \
    /* The samples i.. of hidden unit h's sums: h . dZT[j] into c[j]; its delta (dZT's \
       rows weighted by w, ReLU's mask applied) into bias and, dotted with XT's rows, g. */ \
    FASTMLP_INLINE void S##_backward_columns(                                           \
            int kin, int kout, const T* w, const T* XT, const T* h, const T* dZT,      \
            int n, int i, int skip, S##_vec* c, S##_vec* g, S##_vec* bias) {            \
        S##_vec hv = S##_load(h + i), d = {0};                                          \
        if (skip)  /* lanes done already: a zero h adds nothing (nor its delta) */      \
            hv = S##_from_lane(hv, skip);                                               \
        for (int j = 0; j < kout; j++) {                                                \
            S##_vec z = S##_load(dZT + (long)j * n + i);                                \
            c[j] += hv * z;                                                             \
            d += w[j] * z;                                                              \
        }                                                                               \
        d = S##_where_positive(d, hv);                                                  \
        *bias += d;                                                                     \
        for (int q = 0; q < kin; q++)                                                   \
            g[q] += S##_load(XT + (long)q * n + i) * d;                                 \
    }                                                                                   \
    /* dW2, db1 and dW1, one pass over the samples a hidden unit. */                    \
    FASTMLP_INLINE void S##_backward(int kin, int kout, const T* XT, const T* HT,       \
                                     const T* dZT, const T* W2, T* dW1, T* db1,         \
                                     T* dW2, int hidden, int n) {                       \
        for (int p = 0; p < hidden; p++) {                                              \
            const T* h = HT + (long)p * n;                                              \
            S##_vec c[4] = {0}, g[4] = {0}, bias = {0};                                 \
            T w[4];                                                                     \
            for (int j = 0; j < kout; j++)                                              \
                w[j] = W2[p * kout + j];                                                \
            int i = 0;                                                                  \
            for (; i + S##_LANES <= n; i += S##_LANES)                                  \
                S##_backward_columns(kin, kout, w, XT, h, dZT, n, i, 0, c, g, &bias);      \
            if (i < n)                                                                  \
                S##_backward_columns(kin, kout, w, XT, h, dZT, n, n - S##_LANES,        \
                                     i - (n - S##_LANES), c, g, &bias);                 \
            for (int j = 0; j < kout; j++)                                              \
                dW2[p * kout + j] = S##_sum(c[j]);                                      \
            for (int q = 0; q < kin; q++)                                               \
                dW1[q * hidden + p] = S##_sum(g[q]);                                    \
            db1[p] = S##_sum(bias);                                                     \
        }                                                                               \
    }
    #define FASTMLP_PAIR_ENTRIES(T, S)                                                  \
    /* The sum of p[:n], in vectors (n >= LANES). */                                    \
    static T S##_row_sum(const T* p, int n) {                                           \
        S##_vec total = {0};                                                            \
        int i = 0;                                                                      \
        for (; i + S##_LANES <= n; i += S##_LANES)                                      \
            total += S##_load(p + i);                                                   \
        if (i < n)                                                                      \
            total += S##_from_lane(S##_load(p + n - S##_LANES), i - (n - S##_LANES));   \
        return S##_sum(total);                                                          \
    }                                                                                   \
    static void S##_pair_forward(int kin, int kout, const T* XT, const T* W1,           \
                                 const T* b1, const T* W2, const T* b2, T* HT, T* ZT,   \
                                 int hidden, int n) {                                   \
        FASTMLP_BY_SHAPE(S##_forward, XT, W1, b1, W2, b2, HT, ZT, hidden, n)            \
    }                                                                                   \
    static void S##_pair_backward(int kin, int kout, const T* XT, const T* HT,          \
                                  const T* dZT, const T* W2, T* dW1, T* db1, T* dW2,    \
                                  int hidden, int n) {                                  \
        FASTMLP_BY_SHAPE(S##_backward, XT, HT, dZT, W2, dW1, db1, dW2, hidden, n)       \
    }
    /* KERNEL(kin, kout, ...) for literal kin and kout in 1..4. */
    #define FASTMLP_CASE(KERNEL, KIN, KOUT, ...)                                        \
        case KIN * 8 + KOUT: KERNEL(KIN, KOUT, __VA_ARGS__); break;
    #define FASTMLP_CASES(KERNEL, KIN, ...)                                             \
        FASTMLP_CASE(KERNEL, KIN, 1, __VA_ARGS__) FASTMLP_CASE(KERNEL, KIN, 2, __VA_ARGS__) \
        FASTMLP_CASE(KERNEL, KIN, 3, __VA_ARGS__) FASTMLP_CASE(KERNEL, KIN, 4, __VA_ARGS__)
    #define FASTMLP_BY_SHAPE(KERNEL, ...)                                               \
        switch (kin * 8 + kout) {                                                       \
            FASTMLP_CASES(KERNEL, 1, __VA_ARGS__) FASTMLP_CASES(KERNEL, 2, __VA_ARGS__) \
            FASTMLP_CASES(KERNEL, 3, __VA_ARGS__) FASTMLP_CASES(KERNEL, 4, __VA_ARGS__) \
        }
    FASTMLP_PAIR_HELPERS(float, fastmlp_f32)
    FASTMLP_PAIR_HELPERS(double, fastmlp_f64)
    FASTMLP_PAIR_FORWARD(float, fastmlp_f32)
    FASTMLP_PAIR_FORWARD(double, fastmlp_f64)
    FASTMLP_PAIR_BACKWARD(float, fastmlp_f32)
    FASTMLP_PAIR_BACKWARD(double, fastmlp_f64)
    FASTMLP_PAIR_ENTRIES(float, fastmlp_f32)
    FASTMLP_PAIR_ENTRIES(double, fastmlp_f64)
    """
    void pair_forward_f32 "fastmlp_f32_pair_forward"(
        int kin, int kout, const float* XT, const float* W1, const float* b1, const float* W2,
        const float* b2, float* HT, float* ZT, int hidden, int n) noexcept nogil
    void pair_forward_f64 "fastmlp_f64_pair_forward"(
        int kin, int kout, const double* XT, const double* W1, const double* b1,
        const double* W2, const double* b2, double* HT, double* ZT, int hidden,
        int n) noexcept nogil
    void pair_backward_f32 "fastmlp_f32_pair_backward"(
        int kin, int kout, const float* XT, const float* HT, const float* dZT, const float* W2,
        float* dW1, float* db1, float* dW2, int hidden, int n) noexcept nogil
    void pair_backward_f64 "fastmlp_f64_pair_backward"(
        int kin, int kout, const double* XT, const double* HT, const double* dZT,
        const double* W2, double* dW1, double* db1, double* dW2, int hidden, int n) noexcept nogil
    float row_sum_f32 "fastmlp_f32_row_sum"(const float* p, int n) noexcept nogil
    double row_sum_f64 "fastmlp_f64_row_sum"(const double* p, int n) noexcept nogil

cdef inline floating row_sum(const floating* p, int n) noexcept nogil:
    if floating is float:
        return row_sum_f32(p, n)
    else:
        return row_sum_f64(p, n)


cdef inline void pair_forward(int kin, int kout, const floating* XT, const floating* W1,
                              const floating* b1, const floating* W2, const floating* b2,
                              floating* HT, floating* ZT, int hidden, int n) noexcept nogil:
    """HT = relu(W1.T @ XT + b1), ZT = W2.T @ HT + b2 (see the C kernels above)."""
    if floating is float:
        pair_forward_f32(kin, kout, XT, W1, b1, W2, b2, HT, ZT, hidden, n)
    else:
        pair_forward_f64(kin, kout, XT, W1, b1, W2, b2, HT, ZT, hidden, n)


cdef inline void pair_backward(int kin, int kout, const floating* XT, const floating* HT,
                               const floating* dZT, const floating* W2, floating* dW1,
                               floating* db1, floating* dW2, int hidden, int n) noexcept nogil:
    """dW1, db1 and dW2 from the transposed activations (see the C kernels above)."""
    if floating is float:
        pair_backward_f32(kin, kout, XT, HT, dZT, W2, dW1, db1, dW2, hidden, n)
    else:
        pair_backward_f64(kin, kout, XT, HT, dZT, W2, dW1, db1, dW2, hidden, n)



cdef double narrow_pair_c(const floating* X, const floating* Y, const floating* theta,
                          floating* grad, floating* w, const long long* layers,
                          int n) noexcept nogil:
    """loss_and_grads_c (penalties aside) for runs_narrow_pair's networks, with the hidden
    layer, the logits and their gradient stored transposed (units x samples) in their work
    regions; the output probabilities keep the contract's layout. The hidden layer's
    gradient is never stored: its backward pass sums each unit's delta as it goes."""
    cdef floating XT[STACK_ITEMS]
    cdef int kin = at(layers, 0, FAN_IN), hidden = at(layers, 0, FAN_OUT)
    cdef int kout = at(layers, 1, FAN_OUT), i, j
    cdef floating* HT = w + at(layers, 0, COL_A)
    cdef floating* ZT = w + at(layers, 1, COL_Z)
    cdef floating* dZT = w + at(layers, 1, COL_DZ)
    cdef floating* db2 = grad + at(layers, 1, COL_B)
    cdef double loss
    for i in range(n):
        for j in range(kin):
            XT[j * n + i] = X[i * kin + j]
    pair_forward(kin, kout, XT, theta + at(layers, 0, COL_W), theta + at(layers, 0, COL_B),
                 theta + at(layers, 1, COL_W), theta + at(layers, 1, COL_B), HT, ZT, hidden, n)
    loss = softmax_ce_transposed(ZT, Y, w + at(layers, 1, COL_A), dZT, kout, n)
    pair_backward(kin, kout, XT, HT, dZT, theta + at(layers, 1, COL_W),
                  grad + at(layers, 0, COL_W), grad + at(layers, 0, COL_B),
                  grad + at(layers, 1, COL_W), hidden, n)
    for j in range(kout):
        db2[j] = row_sum(dZT + j * n, n)
    return loss


cdef double loss_and_grads_c(const floating* X, const floating* Y, const floating* theta,
                             floating* grad, floating* w, const long long* layers, int n_layers,
                             const long long* spec, const double* coefs, int n) noexcept nogil:
    cdef int l, last = n_layers - 1, hidden = spec[0]
    cdef double loss, p = coefs[0]
    cdef floating* d_inp
    cdef const floating* inp
    cdef const floating* relu_out
    cdef bint relu_applied
    if runs_narrow_pair(layers, n_layers, spec, n):
        loss = narrow_pair_c(X, Y, theta, grad, w, layers, n)
        return add_penalties(loss, theta, grad, layers, n_layers, coefs)
    forward_c(X, theta, w, layers, n_layers, n, hidden, p)
    loss = output_loss_c(spec[1], spec[2], w + at(layers, last, COL_Z), Y,
                         w + at(layers, last, COL_A), w + at(layers, last, COL_DZ), n,
                         at(layers, last, FAN_OUT))
    for l in range(last, -1, -1):
        if l == 0:
            inp, d_inp = X, NULL
        else:
            inp, d_inp = w + at(layers, l - 1, COL_OUT), w + at(layers, l - 1, COL_DZ)
        # relu's derivative and dropout's mask commute (both keep or zero each entry)
        relu_out = w + at(layers, l - 1, COL_A) if l > 0 and hidden == RELU else NULL
        relu_applied = linear_backward_c(inp, theta + at(layers, l, COL_W),
                                         w + at(layers, l, COL_DZ), n, at(layers, l, FAN_IN),
                                         at(layers, l, FAN_OUT), grad + at(layers, l, COL_W),
                                         grad + at(layers, l, COL_B), d_inp, relu_out)
        if l == 0:
            continue
        if at(layers, l - 1, COL_U) >= 0:
            dropout_c(d_inp, w + at(layers, l - 1, COL_U), p, d_inp, n * at(layers, l, FAN_IN))
        if not relu_applied:
            activation_grad(w + at(layers, l - 1, COL_A), d_inp, n, at(layers, l, FAN_IN), hidden)
    return add_penalties(loss, theta, grad, layers, n_layers, coefs)


cdef double add_penalties(double loss, const floating* theta, floating* grad,
                          const long long* layers, int n_layers, const double* coefs) noexcept nogil:
    """loss plus the L1/L2 penalties of the weights, their gradients added into grad."""
    cdef int l
    if coefs[1] != 0 or coefs[2] != 0:
        for l in range(n_layers):
            loss += penalty_c(theta + at(layers, l, COL_W), coefs[1], coefs[2],
                              grad + at(layers, l, COL_W),
                              at(layers, l, FAN_IN) * at(layers, l, FAN_OUT))
    return loss


def network_loss_and_grads(const floating[:, ::1] X, const floating[:, ::1] Y,
                           const floating[::1] theta, floating[::1] grad, floating[::1] work,
                           const long long[:, ::1] layers, const long long[::1] spec,
                           const double[::1] coefs):
    cdef double loss
    with nogil:
        loss = loss_and_grads_c(&X[0, 0], &Y[0, 0], &theta[0], &grad[0], &work[0],
                                &layers[0, 0], layers.shape[0], &spec[0], &coefs[0], X.shape[0])
    return loss


cdef void update_c(int optimizer, floating* param, const floating* grad, floating* state,
                   Py_ssize_t n, const double* s) noexcept nogil:
    """The update of ``optimizer`` with its scalars ``s`` (flags stored as 0 or 1)."""
    if optimizer == SGD:
        sgd_c(param, grad, state, n, s[0], s[1], s[2], s[3] != 0, s[4])
    elif optimizer == RMSPROP:
        rmsprop_c(param, grad, state, n, s[0], s[1], s[2], s[3], s[4] != 0, s[5])
    elif optimizer == ADAM:
        adam_c(param, grad, state, n, s[0], s[1], s[2], s[3], s[4], s[5], s[6] != 0)
    else:
        adagrad_c(param, grad, state, n, s[0], s[1], s[2])


cdef double train_step_c(const floating* X, const floating* Y, floating* theta, floating* grad,
                         floating* work, const long long* layers, int n_layers,
                         const long long* spec, const double* coefs, int n, int optimizer,
                         floating* state, Py_ssize_t size, const double* scalars) noexcept nogil:
    cdef double loss = loss_and_grads_c(X, Y, theta, grad, work, layers, n_layers, spec, coefs, n)
    update_c(optimizer, theta, grad, state, size, scalars)
    return loss


cdef inline void* data(cnp.ndarray array, int kind) except NULL:
    """The data of a C-contiguous array of NumPy type ``kind``; ValueError otherwise."""
    if cnp.PyArray_TYPE(array) != kind or not cnp.PyArray_IS_C_CONTIGUOUS(array):
        raise ValueError(f"expected a C-contiguous {cnp.PyArray_DescrFromType(kind)} array, "
                         f"got {array.dtype} (C-contiguous: {array.flags.c_contiguous})")
    return cnp.PyArray_DATA(array)


def network_train_step(cnp.ndarray X not None, cnp.ndarray Y not None,
                       cnp.ndarray theta not None, cnp.ndarray grad not None,
                       cnp.ndarray work not None, cnp.ndarray layers not None,
                       cnp.ndarray spec not None, cnp.ndarray coefs not None, int optimizer,
                       cnp.ndarray state not None, cnp.ndarray scalars not None):
    # ndarray arguments, not typed memoryviews: acquiring eleven memoryviews cost ~1.5 us,
    # most of a small network's step. Shapes were checked by the caller (the contract's
    # wrapper, or the model); dtypes and contiguity are checked here, cheaply.
    cdef int kind = cnp.PyArray_TYPE(theta), n = X.shape[0], n_layers = layers.shape[0]
    cdef Py_ssize_t size = theta.shape[0]
    cdef const long long* table = <const long long*>data(layers, cnp.NPY_INT64)
    cdef const long long* codes = <const long long*>data(spec, cnp.NPY_INT64)
    cdef const double* c = <const double*>data(coefs, cnp.NPY_FLOAT64)
    cdef const double* s = <const double*>data(scalars, cnp.NPY_FLOAT64)
    cdef double loss
    if kind == cnp.NPY_FLOAT32:
        loss = train_step_c(<const float*>data(X, kind), <const float*>data(Y, kind),
                            <float*>data(theta, kind), <float*>data(grad, kind),
                            <float*>data(work, kind), table, n_layers, codes, c, n, optimizer,
                            <float*>data(state, kind), size, s)
    else:
        kind = cnp.NPY_FLOAT64
        loss = train_step_c(<const double*>data(X, kind), <const double*>data(Y, kind),
                            <double*>data(theta, kind), <double*>data(grad, kind),
                            <double*>data(work, kind), table, n_layers, codes, c, n, optimizer,
                            <double*>data(state, kind), size, s)
    return loss
