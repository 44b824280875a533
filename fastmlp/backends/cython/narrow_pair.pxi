# One ReLU hidden layer between a few inputs and a few classes (tuning.narrow_pair): the
# hidden activations, the logits and their gradient stored transposed (units x samples), so
# every loop runs along a long contiguous row of samples, one pass forward and one backward.
# The loops over the samples are C (narrow_pair.h).

cdef extern from "narrow_pair.h":
    void pair_forward_f32(int kin, int kout, const float* XT, const float* W1, const float* b1,
                          const float* W2, const float* b2, float* HT, float* ZT, int hidden,
                          int n, int stride) noexcept nogil
    void pair_forward_f64(int kin, int kout, const double* XT, const double* W1,
                          const double* b1, const double* W2, const double* b2, double* HT,
                          double* ZT, int hidden, int n, int stride) noexcept nogil
    void pair_backward_f32(int kin, int kout, const float* XT, const float* HT,
                           const float* dZT, const float* W2, float* dW1, float* db1,
                           float* dW2, int hidden, int n, int stride) noexcept nogil
    void pair_backward_f64(int kin, int kout, const double* XT, const double* HT,
                           const double* dZT, const double* W2, double* dW1, double* db1,
                           double* dW2, int hidden, int n, int stride) noexcept nogil
    float row_sum_f32(const float* p, int n) noexcept nogil
    double row_sum_f64(const double* p, int n) noexcept nogil


cdef inline floating row_sum(const floating* p, int n) noexcept nogil:
    if floating is float:
        return row_sum_f32(p, n)
    else:
        return row_sum_f64(p, n)


cdef inline void pair_forward(int kin, int kout, const floating* XT, const floating* W1,
                              const floating* b1, const floating* W2, const floating* b2,
                              floating* HT, floating* ZT, int hidden, int n,
                              int stride) noexcept nogil:
    """HT = relu(W1.T @ XT + b1), ZT = W2.T @ HT + b2 (the C in narrow_pair.typed.h)."""
    if floating is float:
        pair_forward_f32(kin, kout, XT, W1, b1, W2, b2, HT, ZT, hidden, n, stride)
    else:
        pair_forward_f64(kin, kout, XT, W1, b1, W2, b2, HT, ZT, hidden, n, stride)


cdef inline void pair_backward(int kin, int kout, const floating* XT, const floating* HT,
                               const floating* dZT, const floating* W2, floating* dW1,
                               floating* db1, floating* dW2, int hidden, int n,
                               int stride) noexcept nogil:
    """dW1, db1 and dW2 from the transposed activations (the C in narrow_pair.typed.h)."""
    if floating is float:
        pair_backward_f32(kin, kout, XT, HT, dZT, W2, dW1, db1, dW2, hidden, n, stride)
    else:
        pair_backward_f64(kin, kout, XT, HT, dZT, W2, dW1, db1, dW2, hidden, n, stride)


cdef double softmax_cross_entropy_transposed(const floating* ZT, const floating* Y,
                                             floating* P, floating* dZT, int k,
                                             int n) noexcept nogil:
    """softmax_cross_entropy_c on logits stored transposed, ZT (k classes, n samples): the gradient
    into dZT transposed, the probabilities into P as the contract has them (n, k: fit reads
    them). Every loop runs along the samples, through row pointers (GCC vectorises a loop
    indexed by i alone), none with a sum across them (GCC keeps such a sum in order, in
    scalar code) but row_sum."""
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
        lse[i] += log_positive(total[i])
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


cdef double narrow_pair_loss_and_grads_c(const floating* X, const floating* Y,
                                         const floating* theta, floating* grad, floating* w,
                                         const long long* layers, int n_layers,
                                         const double* coefs, int n) noexcept nogil:
    """network_loss_and_grads for tuning.narrow_pair's networks, with the hidden layer, the
    logits and their gradient stored transposed (units x samples; the hidden layer's rows
    tuning.pair_columns(n) long, as Numba's) in their work regions; the output
    probabilities keep the contract's layout. The hidden layer's gradient is never
    stored: its backward pass sums each unit's delta as it goes."""
    cdef floating XT[STACK_ITEMS]
    cdef int kin = at(layers, 0, FAN_IN), hidden = at(layers, 0, FAN_OUT)
    cdef int kout = at(layers, 1, FAN_OUT), stride = pair_columns(n), i, j
    cdef floating* HT = w + at(layers, 0, COL_A)
    cdef floating* ZT = w + at(layers, 1, COL_Z)
    cdef floating* dZT = w + at(layers, 1, COL_DZ)
    cdef floating* db2 = grad + at(layers, 1, COL_B)
    cdef double loss
    for i in range(n):
        for j in range(kin):
            XT[j * n + i] = X[i * kin + j]
    pair_forward(kin, kout, XT, theta + at(layers, 0, COL_W), theta + at(layers, 0, COL_B),
                 theta + at(layers, 1, COL_W), theta + at(layers, 1, COL_B), HT, ZT, hidden, n,
                 stride)
    loss = softmax_cross_entropy_transposed(ZT, Y, w + at(layers, 1, COL_A), dZT, kout, n)
    pair_backward(kin, kout, XT, HT, dZT, theta + at(layers, 1, COL_W),
                  grad + at(layers, 0, COL_W), grad + at(layers, 0, COL_B),
                  grad + at(layers, 1, COL_W), hidden, n, stride)
    for j in range(kout):
        db2[j] = row_sum(dZT + j * n, n)
    return penalties(loss, theta, grad, layers, n_layers, coefs)


def narrow_pair_loss_and_grads(const floating[:, ::1] X, const floating[:, ::1] Y,
                               const floating[::1] theta, floating[::1] grad,
                               floating[::1] work, const long long[:, ::1] layers,
                               const long long[::1] spec, const double[::1] coefs, int kin,
                               int kout):
    """network_loss_and_grads for tuning.narrow_pair's networks (``kin`` inputs, ``kout``
    classes, as narrow_pair gives them: the C loops read them from ``layers``)."""
    cdef double loss
    with nogil:
        loss = narrow_pair_loss_and_grads_c(&X[0, 0], &Y[0, 0], &theta[0], &grad[0], &work[0],
                                            &layers[0, 0], layers.shape[0], &coefs[0],
                                            X.shape[0])
    return loss


def narrow_pair_train_step(cnp.ndarray X not None, cnp.ndarray Y not None,
                           cnp.ndarray theta not None, cnp.ndarray grad not None,
                           cnp.ndarray work not None, cnp.ndarray layers not None,
                           cnp.ndarray spec not None, cnp.ndarray coefs not None,
                           int optimizer, cnp.ndarray state not None,
                           cnp.ndarray scalars not None, int kin, int kout):
    """network_train_step for tuning.narrow_pair's networks (see narrow_pair_loss_and_grads)."""
    return train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state, scalars,
                      True)
