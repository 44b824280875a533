# Dense layers: the product and its neighbouring passes, fused where the shape allows.


cdef void linear_forward_c(const floating* X, const floating* W, const floating* b, int n,
                           int fan_in, int fan_out, int act, floating* out) noexcept nogil:
    if narrow_k_applies(n, fan_in, fan_out) and (act == RELU or act == IDENTITY):
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


cdef bint linear_backward_relu(const floating* X, const floating* W, const floating* dZ, int n,
                               int fan_in, int fan_out, floating* dW, floating* db,
                               floating* dX, const floating* relu_out) noexcept nogil:
    """linear_backward into dW, db and dX (may be NULL); given relu_out (the output of the
    ReLU that fed this layer), dX also gets ReLU's derivative where the product loop can
    apply it in its own pass. Returns whether it did."""
    cdef int i, j
    cdef const floating* row
    if narrow_k_applies(n, fan_in, fan_out):  # a narrow X: dW has few rows
        weight_grads(fan_in, fan_out, n, X, fan_in, dZ, dW, db)
    else:
        gemm(True, False, fan_in, fan_out, n, X, fan_in, dZ, fan_out, dW)
        memset(db, 0, fan_out * sizeof(floating))
        for i in range(n):
            row = dZ + i * fan_out
            for j in range(fan_out):
                db[j] += row[j]
    if dX == NULL:
        return False
    if relu_out != NULL and narrow_k_applies(n, fan_out, fan_in):
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
        linear_backward_relu(&X[0, 0], &W[0, 0], &dZ[0, 0], X.shape[0], X.shape[1], W.shape[1],
                             &dW[0, 0], &db[0], dX_ptr, <floating*>NULL)
