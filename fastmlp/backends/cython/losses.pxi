# Losses, each fused with its output activation's gradient where the pair allows.


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


cdef inline floating log_positive(floating x) noexcept nogil:
    """log(x) for a positive normal x (NaN gives NaN), branch-free so that a loop of it
    vectorises: fdlibm's log, x = (1 + f) 2**e and log(1 + f) = 2 s + s R for
    s = f / (2 + f), R the series of 2 atanh(s) / s - 2 in s**2 (to degree 8 in float, 20 in
    double; numba's losses.LOG_SERIES)."""
    cdef floating e, f, s, z, r, half_square
    f = log_split(x, &e) - 1
    s, half_square = f / (2 + f), (<floating>0.5) * f * f
    z = s * s
    if floating is float:
        r = z * (<float>(2 / 3.) + z * (<float>(2 / 5.) + z * (<float>(2 / 7.)
            + z * <float>(2 / 9.))))
    else:
        r = z * (2 / 3. + z * (2 / 5. + z * (2 / 7. + z * (2 / 9. + z * (2 / 11. + z * (2 / 13.
            + z * (2 / 15. + z * (2 / 17. + z * (2 / 19. + z * (2 / 21.))))))))))
    return (e * <floating>LN2_HI - ((half_square - (s * (half_square + r) + e * <floating>LN2_LO))
            - f)) + (x - x)  # x - x: NaN for a NaN x, else 0


cdef double softmax_cross_entropy_c(const floating* Z, const floating* Y, floating* P, floating* dZ,
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


cdef double sigmoid_cross_entropy_c(const floating* Z, const floating* Y, floating* P, floating* dZ,
                         int rows, int cols) noexcept nogil:
    cdef int i, size = rows * cols
    cdef double loss = 0, z
    for i in range(size):
        z = Z[i]
        P[i] = sigmoid(Z[i])
        loss += max(z, 0.0) - z * Y[i] + log1p(exp(-fabs(z)))
        dZ[i] = (P[i] - Y[i]) / size
    return loss / size


cdef double pointwise_loss(int loss, const floating* P, const floating* Y, floating* dP,
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
        return softmax_cross_entropy_c(Z, Y, P, dZ, rows, cols)
    if loss == CROSS_ENTROPY and out_act == SIGMOID:
        return sigmoid_cross_entropy_c(Z, Y, P, dZ, rows, cols)
    for i in range(rows * cols):
        P[i] = Z[i]
    bias_activation(P, <floating*>NULL, rows, cols, out_act)
    value = pointwise_loss(loss, P, Y, dZ, rows * cols)
    activation_grad(P, dZ, rows, cols, out_act)
    return value


def softmax_cross_entropy(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] P,
                          floating[:, ::1] dZ):
    cdef double value
    with nogil:
        value = softmax_cross_entropy_c(&Z[0, 0], &Y[0, 0], &P[0, 0], &dZ[0, 0], Z.shape[0],
                                        Z.shape[1])
    return value


def sigmoid_cross_entropy(const floating[:, ::1] Z, const floating[:, ::1] Y, floating[:, ::1] P,
                          floating[:, ::1] dZ):
    cdef double value
    with nogil:
        value = sigmoid_cross_entropy_c(&Z[0, 0], &Y[0, 0], &P[0, 0], &dZ[0, 0], Z.shape[0],
                                        Z.shape[1])
    return value


def mse_loss(const floating[:, ::1] P, const floating[:, ::1] Y, floating[:, ::1] dP):
    cdef double value
    with nogil:
        value = pointwise_loss(MSE, &P[0, 0], &Y[0, 0], &dP[0, 0], P.shape[0] * P.shape[1])
    return value


def l1_loss(const floating[:, ::1] P, const floating[:, ::1] Y, floating[:, ::1] dP):
    cdef double value
    with nogil:
        value = pointwise_loss(L1, &P[0, 0], &Y[0, 0], &dP[0, 0], P.shape[0] * P.shape[1])
    return value


def output_loss(int out_act, int loss, const floating[:, ::1] Z, const floating[:, ::1] Y,
                floating[:, ::1] P, floating[:, ::1] dZ):
    cdef double value
    with nogil:
        value = output_loss_c(out_act, loss, &Z[0, 0], &Y[0, 0], &P[0, 0], &dZ[0, 0],
                         Z.shape[0], Z.shape[1])
    return value
