# Activations, dropout and the weight penalty: one pass each, in place where they can be.
# The activation branch is taken outside the loops, so that GCC vectorises them.


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


cdef void bias_activation(floating* Z, const floating* b, int rows, int cols,
                          int act) noexcept nogil:
    """Z = f_act(Z + b) in place (b may be NULL: no bias); the branch sits outside the loops."""
    cdef int i, j
    cdef floating v
    cdef floating* row
    for i in range(rows):
        row = Z + i * cols
        if b != NULL and act == RELU:  # the common hidden layer, in one pass
            for j in range(cols):
                v = row[j] + b[j]
                row[j] = 0 if v <= 0 else v  # a NaN stays NaN (not <= 0), as in np.maximum
            continue
        if b != NULL:
            for j in range(cols):
                row[j] += b[j]
        if act == RELU:
            for j in range(cols):
                v = row[j]
                row[j] = 0 if v <= 0 else v
        elif act == SIGMOID:
            for j in range(cols):
                row[j] = sigmoid(row[j])
        elif act == TANH:
            for j in range(cols):
                row[j] = tanh(row[j])
    if act == SOFTMAX:
        softmax_rows(Z, rows, cols)


cdef void activation_grad(const floating* A, floating* dA, int rows, int cols,
                          int act) noexcept nogil:
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


cdef enum:
    PENALTY_LANES = 8


cdef double penalty_c(const floating* W, double l1, double l2, floating* dW,
                      int size) noexcept nogil:
    # The value in PENALTY_LANES independent sums: one running sum is a chain of dependent
    # adds (4 cycles each), which made the penalty cost as much as a digits step's products.
    cdef int i, block, lane, whole = size - size % PENALTY_LANES
    cdef double value = 0, w
    cdef double squares[PENALTY_LANES]
    cdef double absolutes[PENALTY_LANES]
    cdef floating l1_f = <floating>l1, l2_f = <floating>l2
    for lane in range(PENALTY_LANES):
        squares[lane] = 0
        absolutes[lane] = 0
    for block in range(size // PENALTY_LANES):
        for lane in range(PENALTY_LANES):
            w = W[block * PENALTY_LANES + lane]
            squares[lane] += w * w
            absolutes[lane] += fabs(w)
    for i in range(whole, size):
        squares[0] += <double>W[i] * W[i]
        absolutes[0] += fabs(W[i])
    for lane in range(PENALTY_LANES):
        value += 0.5 * l2 * squares[lane] + l1 * absolutes[lane]
    if l1 != 0:
        for i in range(size):
            dW[i] += l1_f * ((W[i] > 0) - (W[i] < 0)) + l2_f * W[i]
    else:
        for i in range(size):
            dW[i] += l2_f * W[i]
    return value


def penalty(const floating[:, ::1] W, double l1, double l2, floating[:, ::1] dW):
    cdef double value
    with nogil:
        value = penalty_c(&W[0, 0], l1, l2, &dW[0, 0], W.shape[0] * W.shape[1])
    return value


cdef void dropout_apply_c(const floating* A, const floating* U, double p, floating* out,
                          int size) noexcept nogil:
    cdef int i
    cdef double keep = 1 - p
    for i in range(size):
        out[i] = A[i] / keep if U[i] >= p else 0


def dropout_apply(const floating[:, ::1] A, const floating[:, ::1] U, double p,
                  floating[:, ::1] out):
    with nogil:
        dropout_apply_c(&A[0, 0], &U[0, 0], p, &out[0, 0], A.shape[0] * A.shape[1])
