# Matrix products: the path gemm_path (tuning.py's, in tuning.pxi) picks for each shape,
# and its loops.
# The narrow loops fold in their neighbours' passes where a layer asks (bias and ReLU
# forward, ReLU's derivative into dX, db into dW); measurements in docs/performance.md.

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
    return (0 if v <= 0 else v) if epilogue == ADD_BIAS_RELU else v  # NaN stays NaN


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
    """C = op(A) @ B for k <= NARROW_K, B (k, n) contiguous, finished as epilogue says
    (extra: the bias, or for GATED the gate, (m, n)): one pass over each row of C, so a
    layer's product, bias and ReLU take one pass, not two."""
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
        # Row pointers: the inner loop indexes by i alone, which GCC vectorises.
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


cdef void weight_grads(int m, int n, int k, const floating* AT, int lda, const floating* B,
                       floating* C, floating* column_sums) noexcept nogil:
    """C = AT.T @ B for few rows m of C (AT (k, m) row-major: X in dW = X.T @ dZ, B = dZ
    (k, n) contiguous), and B's column sums (db), in one pass over B, four rows at a time
    (the i-k-j loop and a pass of sums read B twice)."""
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


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k, const floating* A, int lda,
               const floating* B, int ldb, floating* C) noexcept nogil:
    """C (m, n) = op(A) @ op(B), row-major, lda/ldb the stored row lengths."""
    gemm_on_path(gemm_path(m, k, n, trans_a, trans_b), trans_a, trans_b, m, n, k, A, lda, B,
                 ldb, C)


cdef void gemm_on_path(int path, bint trans_a, bint trans_b, int m, int n, int k,
                       const floating* A, int lda, const floating* B, int ldb,
                       floating* C) noexcept nogil:
    """gemm by ``path`` (GEMM_PATHS), which must apply to the shape (its stack scratch)."""
    cdef int i, j, p
    cdef floating a
    cdef floating* c_row
    cdef const floating* b_row
    if path == NARROW_K_PATH and trans_b:
        narrow_k_transposed_b(trans_a, m, n, k, A, lda, B, ldb, C, <floating*>NULL, AS_IS)
        return
    if path == NARROW_K_PATH:
        narrow_k(trans_a, m, n, k, A, lda, B, C, <floating*>NULL, AS_IS)
        return
    if path == NARROW_N_PATH and trans_a:
        narrow_n_transposed_a(m, n, k, A, lda, B, ldb, trans_b, C)
        return
    if path == NARROW_N_PATH:
        narrow_n(trans_b, m, n, k, A, B, ldb, C)
        return
    if path == LOOP_PATH and trans_b:  # a tiny product: dot products along B.T's rows
        for i in range(m):
            for j in range(n):
                a = 0
                for p in range(k):
                    a += (A[p * lda + i] if trans_a else A[i * lda + p]) * B[j * ldb + p]
                C[i * n + j] = a
        return
    if path == LOOP_PATH:  # the i-k-j loop: its inner loop along a row of B vectorises
        memset(C, 0, m * n * sizeof(floating))
        for i in range(m):
            c_row = C + i * n  # row pointers: the inner loop indexes by j alone
            for p in range(k):
                a = A[p * lda + i] if trans_a else A[i * lda + p]
                b_row = B + p * ldb
                for j in range(n):
                    c_row[j] += a * b_row[j]
        return
    cdef floating BT[STACK_ITEMS]
    if trans_b and COPY_BT and k * n <= STACK_ITEMS:  # for BLAS's small kernels (tuning.py)
        for p in range(k):
            for j in range(n):
                BT[p * n + j] = B[j * ldb + p]
        B, ldb, trans_b = BT, n, False
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


def matmul_path(const floating[:, :] A, const floating[:, :] B, floating[:, ::1] out,
                int path):
    """out = A @ B by ``path``, whatever the shape's path; A and B each C-contiguous or the
    transpose of a C-contiguous array (checked by the caller: tests and bench)."""
    cdef bint trans_a = A.strides[1] != sizeof(floating)
    cdef bint trans_b = B.strides[1] != sizeof(floating)
    cdef int lda = (A.strides[1] if trans_a else A.strides[0]) // sizeof(floating)
    cdef int ldb = (B.strides[1] if trans_b else B.strides[0]) // sizeof(floating)
    with nogil:
        gemm_on_path(path, trans_a, trans_b, A.shape[0], B.shape[1], A.shape[1], &A[0, 0], lda,
                     &B[0, 0], ldb, &out[0, 0])


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
