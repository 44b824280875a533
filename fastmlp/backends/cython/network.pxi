# The whole network, layer by layer, over the flat buffers of fastmlp.backends.layout.


cdef inline long long at(const long long* layers, int l, int column) noexcept nogil:
    """layers[l, column] of the (L, 9) layers table."""
    return layers[l * 9 + column]


cdef void forward(const floating* X, const floating* theta, floating* work,
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
            dropout_apply_c(out, work + at(layers, l, COL_U), dropout,
                            work + at(layers, l, COL_OUT), n * at(layers, l, FAN_OUT))
        inp = work + at(layers, l, COL_OUT)


def network_forward(const floating[:, ::1] X, const floating[::1] theta, floating[::1] work,
                    const long long[:, ::1] layers, const long long[::1] spec):
    cdef int n = X.shape[0], last = layers.shape[0] - 1, size
    cdef Py_ssize_t i
    cdef floating* P
    with nogil:
        forward(&X[0, 0], &theta[0], &work[0], &layers[0, 0], layers.shape[0], n,
                spec[HIDDEN_ACT], 0.0)
        size = n * layers[last, FAN_OUT]
        P = &work[0] + layers[last, COL_A]
        for i in range(size):
            P[i] = work[layers[last, COL_Z] + i]
        bias_activation(P, <floating*>NULL, n, layers[last, FAN_OUT], spec[OUTPUT_ACT])


cdef double layered_loss_and_grads_c(const floating* X, const floating* Y,
                                     const floating* theta, floating* grad, floating* w,
                                     const long long* layers, int n_layers,
                                     const long long* spec, const double* coefs,
                                     int n) noexcept nogil:
    cdef int l, last = n_layers - 1, hidden = spec[HIDDEN_ACT]
    cdef double loss, p = coefs[DROPOUT]
    cdef floating* d_inp
    cdef const floating* inp
    cdef const floating* relu_out
    cdef bint relu_applied
    forward(X, theta, w, layers, n_layers, n, hidden, p)
    loss = output_loss_c(spec[OUTPUT_ACT], spec[LOSS], w + at(layers, last, COL_Z), Y,
                         w + at(layers, last, COL_A), w + at(layers, last, COL_DZ), n,
                         at(layers, last, FAN_OUT))
    for l in range(last, -1, -1):
        if l == 0:
            inp, d_inp = X, NULL
        else:
            inp, d_inp = w + at(layers, l - 1, COL_OUT), w + at(layers, l - 1, COL_DZ)
        # relu's derivative and dropout's mask commute (both keep or zero each entry)
        relu_out = w + at(layers, l - 1, COL_A) if l > 0 and hidden == RELU else NULL
        relu_applied = linear_backward_relu(inp, theta + at(layers, l, COL_W),
                                            w + at(layers, l, COL_DZ), n, at(layers, l, FAN_IN),
                                            at(layers, l, FAN_OUT), grad + at(layers, l, COL_W),
                                            grad + at(layers, l, COL_B), d_inp, relu_out)
        if l == 0:
            continue
        if at(layers, l - 1, COL_U) >= 0:
            dropout_apply_c(d_inp, w + at(layers, l - 1, COL_U), p, d_inp,
                            n * at(layers, l, FAN_IN))
        if not relu_applied:
            activation_grad(w + at(layers, l - 1, COL_A), d_inp, n, at(layers, l, FAN_IN), hidden)
    return penalties(loss, theta, grad, layers, n_layers, coefs)


cdef double penalties(double loss, const floating* theta, floating* grad,
                      const long long* layers, int n_layers, const double* coefs) noexcept nogil:
    """loss plus the L1/L2 penalties of the weights, their gradients added into grad."""
    cdef int l
    if coefs[L1_COEF] != 0 or coefs[L2_COEF] != 0:
        for l in range(n_layers):
            loss += penalty_c(theta + at(layers, l, COL_W), coefs[L1_COEF], coefs[L2_COEF],
                              grad + at(layers, l, COL_W),
                              at(layers, l, FAN_IN) * at(layers, l, FAN_OUT))
    return loss


def layered_loss_and_grads(const floating[:, ::1] X, const floating[:, ::1] Y,
                           const floating[::1] theta, floating[::1] grad, floating[::1] work,
                           const long long[:, ::1] layers, const long long[::1] spec,
                           const double[::1] coefs):
    """network_loss_and_grads, layer by layer."""
    cdef double loss
    with nogil:
        loss = layered_loss_and_grads_c(&X[0, 0], &Y[0, 0], &theta[0], &grad[0], &work[0],
                                        &layers[0, 0], layers.shape[0], &spec[0], &coefs[0],
                                        X.shape[0])
    return loss


cdef double train_step_c(const floating* X, const floating* Y, floating* theta, floating* grad,
                         floating* work, const long long* layers, int n_layers,
                         const long long* spec, const double* coefs, int n, int optimizer,
                         floating* state, Py_ssize_t size, const double* scalars,
                         bint narrow_pair) noexcept nogil:
    """Loss and gradients by the layered or the narrow-pair kernels, then the update, with
    denormals flushed (intrinsics.h)."""
    cdef double loss
    cdef unsigned int control = denormals_off()
    if narrow_pair:
        loss = narrow_pair_loss_and_grads_c(X, Y, theta, grad, work, layers, n_layers, coefs, n)
    else:
        loss = layered_loss_and_grads_c(X, Y, theta, grad, work, layers, n_layers, spec, coefs, n)
    update(optimizer, theta, grad, state, size, scalars)
    fp_control_restore(control)
    return loss


cdef inline void* data(cnp.ndarray array, int kind) except NULL:
    """The data of a C-contiguous array of NumPy type ``kind``; ValueError otherwise."""
    if cnp.PyArray_TYPE(array) != kind or not cnp.PyArray_IS_C_CONTIGUOUS(array):
        raise ValueError(f"expected a C-contiguous {cnp.PyArray_DescrFromType(kind)} array, "
                         f"got {array.dtype} (C-contiguous: {array.flags.c_contiguous})")
    return cnp.PyArray_DATA(array)


cdef double train_step(cnp.ndarray X, cnp.ndarray Y, cnp.ndarray theta, cnp.ndarray grad,
                       cnp.ndarray work, cnp.ndarray layers, cnp.ndarray spec, cnp.ndarray coefs,
                       int optimizer, cnp.ndarray state, cnp.ndarray scalars,
                       bint narrow_pair) except? -1:
    """The training steps' arrays as pointers of their dtype. ndarray arguments, not typed
    memoryviews: acquiring eleven memoryviews cost most of a small network's step. Shapes
    were checked by the caller (the contract's wrapper, or the model); dtypes and
    contiguity are checked here, cheaply."""
    cdef int kind = cnp.PyArray_TYPE(theta), n = X.shape[0], n_layers = layers.shape[0]
    cdef Py_ssize_t size = theta.shape[0]
    cdef const long long* table = <const long long*>data(layers, cnp.NPY_INT64)
    cdef const long long* codes = <const long long*>data(spec, cnp.NPY_INT64)
    cdef const double* c = <const double*>data(coefs, cnp.NPY_FLOAT64)
    cdef const double* s = <const double*>data(scalars, cnp.NPY_FLOAT64)
    if kind == cnp.NPY_FLOAT32:
        return train_step_c(<const float*>data(X, kind), <const float*>data(Y, kind),
                            <float*>data(theta, kind), <float*>data(grad, kind),
                            <float*>data(work, kind), table, n_layers, codes, c, n, optimizer,
                            <float*>data(state, kind), size, s, narrow_pair)
    kind = cnp.NPY_FLOAT64
    return train_step_c(<const double*>data(X, kind), <const double*>data(Y, kind),
                        <double*>data(theta, kind), <double*>data(grad, kind),
                        <double*>data(work, kind), table, n_layers, codes, c, n, optimizer,
                        <double*>data(state, kind), size, s, narrow_pair)


def layered_train_step(cnp.ndarray X not None, cnp.ndarray Y not None,
                       cnp.ndarray theta not None, cnp.ndarray grad not None,
                       cnp.ndarray work not None, cnp.ndarray layers not None,
                       cnp.ndarray spec not None, cnp.ndarray coefs not None, int optimizer,
                       cnp.ndarray state not None, cnp.ndarray scalars not None):
    """network_train_step, layer by layer."""
    return train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state, scalars,
                      False)
