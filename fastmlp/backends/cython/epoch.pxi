# Epochs of training steps in one call: the contract's network_train_epoch, in the order
# compose.make_train_epoch runs it (gather, step, loss, correct count, and the divergence
# rule). Each step is the layered or the narrow-pair one of a training step.


cdef bint in_order(const long long* rows, int m) noexcept nogil:
    """Whether ``rows`` are consecutive, as every batch of a fit without shuffling."""
    cdef int i, misses = 0
    for i in range(m):
        misses += rows[i] != rows[0] + i
    return misses == 0


cdef void gather(const floating* X, const floating* Y, const long long* rows, int m, int d,
                 int k, floating* Xb, floating* Yb) noexcept nogil:
    """Xb[i], Yb[i] = X[rows[i]], Y[rows[i]]; consecutive rows as one block."""
    cdef int i, q
    if m and in_order(rows, m):
        memcpy(Xb, X + rows[0] * d, m * d * sizeof(floating))
        memcpy(Yb, Y + rows[0] * k, m * k * sizeof(floating))
        return
    for i in range(m):
        for q in range(d):
            Xb[i * d + q] = X[rows[i] * d + q]
        for q in range(k):
            Yb[i * k + q] = Y[rows[i] * k + q]


cdef void fill_uniforms(floating* work, const long long* layers, int n_layers,
                        const floating* uniforms, long long row, int m) noexcept nogil:
    """The dropout uniforms of batch rows row..row+m-1 into the U regions of ``work``."""
    cdef long long units = 0, offset, size
    cdef int l
    for l in range(n_layers - 1):
        if at(layers, l, COL_U) >= 0:
            units += at(layers, l, FAN_OUT)
    offset = row * units
    for l in range(n_layers - 1):
        if at(layers, l, COL_U) >= 0:
            size = m * at(layers, l, FAN_OUT)
            memcpy(work + at(layers, l, COL_U), uniforms + offset, size * sizeof(floating))
            offset += size


cdef long long count_correct(const floating* P, const floating* Y, int m,
                             int k) noexcept nogil:
    """Rows whose output's class (argmax; above 0.5 for one output) is Y's."""
    cdef long long hits = 0
    cdef int i, j, p, y
    cdef floating top_p, top_y
    for i in range(m):
        if k == 1:
            hits += (P[i] > 0.5) == (Y[i] > 0.5)
            continue
        p, top_p, y, top_y = 0, P[i * k], 0, Y[i * k]  # the maxima kept, not reloaded
        for j in range(1, k):
            if P[i * k + j] > top_p:
                p, top_p = j, P[i * k + j]
            if Y[i * k + j] > top_y:
                y, top_y = j, Y[i * k + j]
        hits += p == y
    return hits


cdef bint all_finite(const floating* a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(a[i]):
            return False
    return True


cdef struct Epoch:  # a call's sizes and its tables but the float arrays
    const long long* order
    long long epochs, rows, batches, units  # order (epochs, rows); units: dropout's, a row
    int b, d, k, n_layers, optimizer, n_scalars, state_rows
    Py_ssize_t size  # of theta
    const long long* layers  # (2, n_layers, 9): a full batch's layout, the last batch's
    const long long* spec
    const double* coefs
    const double* scalars
    double* losses
    long long* correct
    bint pairs[2]  # whether a full batch, and the last, take the narrow-pair step


cdef long long steps(Epoch* a, const floating* X, const floating* Y, floating* Xb, floating* Yb,
                     floating* theta, floating* grad, floating* work, floating* state,
                     const floating* uniforms, floating* saved, long long stop) noexcept nogil:
    """Steps 0..stop-1 of the contract's loop; the first diverged, or -1."""
    cdef long long i, e, j, start
    cdef int m, last
    cdef const long long* plan
    cdef double loss
    for i in range(stop):
        e, j = i // a.batches, i % a.batches
        start = j * a.b
        m = <int>min(<long long>a.b, a.rows - start)
        last = 0 if m == a.b else 1
        plan = a.layers + last * a.n_layers * 9
        gather(X, Y, a.order + e * a.rows + start, m, a.d, a.k, Xb, Yb)
        if uniforms != NULL:
            fill_uniforms(work, plan, a.n_layers, uniforms + e * a.rows * a.units, start, m)
        if a.pairs[last]:
            loss = narrow_pair_loss_and_grads_c(Xb, Yb, theta, grad, work, plan, a.n_layers,
                                                a.coefs, m)
        else:
            loss = layered_loss_and_grads_c(Xb, Yb, theta, grad, work, plan, a.n_layers, a.spec,
                                            a.coefs, m)
        a.losses[i] = loss
        if not isfinite(loss):
            return i
        a.correct[e] += count_correct(work + at(plan, a.n_layers - 1, COL_A), Yb, m, a.k)
        if i == 0:  # the checkpoint; the state's only for a replay, of several steps
            memcpy(saved, theta, a.size * sizeof(floating))
            if a.epochs * a.batches > 1:
                memcpy(saved + a.size, state, a.state_rows * a.size * sizeof(floating))
        update(a.optimizer, theta, grad, state, a.size, a.scalars + i * a.n_scalars)
    return -1


cdef long long train_epoch(Epoch* a, const floating* X, const floating* Y, floating* Xb,
                           floating* Yb, floating* theta, floating* grad, floating* work,
                           floating* state, const floating* uniforms,
                           floating* saved) noexcept nogil:
    """``guarded_steps`` with denormals flushed, as the training step has them."""
    cdef unsigned int control = denormals_off()
    cdef long long result = guarded_steps(a, X, Y, Xb, Yb, theta, grad, work, state, uniforms,
                                          saved)
    fp_control_restore(control)
    return result


cdef long long guarded_steps(Epoch* a, const floating* X, const floating* Y, floating* Xb,
                             floating* Yb, floating* theta, floating* grad, floating* work,
                             floating* state, const floating* uniforms,
                             floating* saved) noexcept nogil:
    """The contract's epoch around ``steps``: the divergence rule."""
    cdef long long total = a.epochs * a.batches
    cdef long long diverged = steps(a, X, Y, Xb, Yb, theta, grad, work, state, uniforms, saved,
                                    total)
    if diverged < 0 and (total == 1 or all_finite(theta, a.size)):
        return -1
    if not all_finite(theta, a.size):
        memcpy(theta, saved, a.size * sizeof(floating))
        if diverged != 0:  # replay up to the update before the last finite loss
            memcpy(state, saved + a.size, a.state_rows * a.size * sizeof(floating))
            steps(a, X, Y, Xb, Yb, theta, grad, work, state, uniforms, saved,
                  (total if diverged < 0 else diverged) - 1)
    return total if diverged < 0 else diverged


cdef long long epoch_arrays(cnp.ndarray X, cnp.ndarray Y, cnp.ndarray order, cnp.ndarray Xb,
                            cnp.ndarray Yb, cnp.ndarray theta, cnp.ndarray grad,
                            cnp.ndarray work, cnp.ndarray layers, cnp.ndarray spec,
                            cnp.ndarray coefs, int optimizer, cnp.ndarray state,
                            cnp.ndarray scalars, cnp.ndarray uniforms, cnp.ndarray saved,
                            cnp.ndarray losses, cnp.ndarray correct, bint full_pair,
                            bint last_pair) except? -2:
    """The epoch's arrays as pointers of their dtype (as train_step takes a step's)."""
    cdef Epoch a
    cdef int kind = cnp.PyArray_TYPE(theta)
    cdef long long result
    a.order = <const long long*>data(order, cnp.NPY_INT64)
    a.epochs, a.rows, a.batches = order.shape[0], order.shape[1], losses.shape[1]
    a.units = 0 if uniforms is None else uniforms.shape[1] // order.shape[1]
    a.b, a.d, a.k, a.n_layers = Xb.shape[0], X.shape[1], Y.shape[1], layers.shape[1]
    a.optimizer, a.n_scalars, a.state_rows = optimizer, scalars.shape[2], state.shape[0]
    a.size = theta.shape[0]
    a.layers = <const long long*>data(layers, cnp.NPY_INT64)
    a.spec = <const long long*>data(spec, cnp.NPY_INT64)
    a.coefs = <const double*>data(coefs, cnp.NPY_FLOAT64)
    a.scalars = <const double*>data(scalars, cnp.NPY_FLOAT64)
    a.losses = <double*>data(losses, cnp.NPY_FLOAT64)
    a.correct = <long long*>data(correct, cnp.NPY_INT64)
    a.pairs[0], a.pairs[1] = full_pair, last_pair
    if kind == cnp.NPY_FLOAT32:
        return train_epoch(&a, <const float*>data(X, kind), <const float*>data(Y, kind),
                           <float*>data(Xb, kind), <float*>data(Yb, kind),
                           <float*>data(theta, kind), <float*>data(grad, kind),
                           <float*>data(work, kind), <float*>data(state, kind),
                           <const float*>NULL if uniforms is None else
                           <const float*>data(uniforms, kind), <float*>data(saved, kind))
    kind = cnp.NPY_FLOAT64
    return train_epoch(&a, <const double*>data(X, kind), <const double*>data(Y, kind),
                       <double*>data(Xb, kind), <double*>data(Yb, kind),
                       <double*>data(theta, kind), <double*>data(grad, kind),
                       <double*>data(work, kind), <double*>data(state, kind),
                       <const double*>NULL if uniforms is None else
                       <const double*>data(uniforms, kind), <double*>data(saved, kind))


def layered_train_epoch(cnp.ndarray X not None, cnp.ndarray Y not None,
                        cnp.ndarray order not None, cnp.ndarray Xb not None,
                        cnp.ndarray Yb not None, cnp.ndarray theta not None,
                        cnp.ndarray grad not None, cnp.ndarray work not None,
                        cnp.ndarray layers not None, cnp.ndarray spec not None,
                        cnp.ndarray coefs not None, int optimizer, cnp.ndarray state not None,
                        cnp.ndarray scalars not None, cnp.ndarray uniforms,
                        cnp.ndarray saved not None, cnp.ndarray losses not None,
                        cnp.ndarray correct not None):
    """network_train_epoch, layer by layer."""
    return epoch_arrays(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                        state, scalars, uniforms, saved, losses, correct, False, False)


def narrow_pair_train_epoch(cnp.ndarray X not None, cnp.ndarray Y not None,
                            cnp.ndarray order not None, cnp.ndarray Xb not None,
                            cnp.ndarray Yb not None, cnp.ndarray theta not None,
                            cnp.ndarray grad not None, cnp.ndarray work not None,
                            cnp.ndarray layers not None, cnp.ndarray spec not None,
                            cnp.ndarray coefs not None, int optimizer,
                            cnp.ndarray state not None, cnp.ndarray scalars not None,
                            cnp.ndarray uniforms, cnp.ndarray saved not None,
                            cnp.ndarray losses not None, cnp.ndarray correct not None,
                            bint full_pair, bint last_pair, int kin, int kout):
    """network_train_epoch for tuning.narrow_pair's networks: the narrow-pair step for the
    full batches (``full_pair``) and the last (``last_pair``), the layered one else (``kin``
    and ``kout`` as narrow_pair_train_step takes them)."""
    return epoch_arrays(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                        state, scalars, uniforms, saved, losses, correct, full_pair, last_pair)
