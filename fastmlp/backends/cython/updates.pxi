# Optimizer updates: the rules live in the cdef functions, shared by the update kernels and
# the training steps. A state of several rows holds row r at state + r * n. Each computes in
# the parameter's precision, its scalars rounded to it first, as the NumPy reference does
# (NEP 50): in float32 the sqrt and the division vectorise twice as wide.


cdef inline floating root(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void sgd_update_c(floating* param, const floating* grad, floating* momentum_buf, Py_ssize_t n,
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


cdef void rmsprop_update_c(floating* param, const floating* grad, floating* state, Py_ssize_t n,
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


cdef void adam_update_c(floating* param, const floating* grad, floating* state, Py_ssize_t n,
                 double step_size, double beta1, double beta2, double eps,
                 double bias_correction2_sqrt, double weight_decay, bint amsgrad) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, wd = weight_decay, b1 = beta1, b2 = beta2, rest1 = 1 - beta1
    cdef floating rest2 = 1 - beta2, size = step_size
    cdef floating eps_ = eps, inverse = 1 / bias_correction2_sqrt
    cdef floating* exp_avg = state
    cdef floating* exp_avg_sq = state + n
    cdef floating* max_exp_avg_sq = state + 2 * n
    cdef floating m, v
    if not amsgrad:  # the default, as one branch-free loop: one sqrt and one division each
        for i in range(n):
            g = grad[i] + wd * param[i]
            m = b1 * exp_avg[i] + rest1 * g
            v = b2 * exp_avg_sq[i] + rest2 * g * g
            exp_avg[i], exp_avg_sq[i] = m, v
            param[i] -= size * m / (root(v) * inverse + eps_)
        return
    # Three loops, each without a branch, so that GCC vectorises them (as numba's).
    for i in range(n):
        g = grad[i] + wd * param[i]
        exp_avg[i] = b1 * exp_avg[i] + rest1 * g
        exp_avg_sq[i] = b2 * exp_avg_sq[i] + rest2 * g * g
    for i in range(n):
        max_exp_avg_sq[i] = max(max_exp_avg_sq[i], exp_avg_sq[i])
    for i in range(n):
        param[i] -= size * exp_avg[i] / (root(max_exp_avg_sq[i]) * inverse + eps_)


cdef void adagrad_update_c(floating* param, const floating* grad, floating* state_sum, Py_ssize_t n,
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
        sgd_update_c(&param[0], &grad[0], &momentum_buf[0], param.shape[0], lr, momentum, dampening,
              nesterov, weight_decay)


def rmsprop_update(floating[::1] param, const floating[::1] grad, floating[:, ::1] state,
                   double lr, double alpha, double eps, double momentum, bint centered,
                   double weight_decay):
    with nogil:
        rmsprop_update_c(&param[0], &grad[0], &state[0, 0], param.shape[0], lr, alpha, eps,
                         momentum, centered, weight_decay)


def adam_update(floating[::1] param, const floating[::1] grad, floating[:, ::1] state,
                double step_size, double beta1, double beta2, double eps,
                double bias_correction2_sqrt, double weight_decay, bint amsgrad):
    with nogil:
        adam_update_c(&param[0], &grad[0], &state[0, 0], param.shape[0], step_size, beta1,
                      beta2, eps, bias_correction2_sqrt, weight_decay, amsgrad)


def adagrad_update(floating[::1] param, const floating[::1] grad, floating[::1] state_sum,
                   double clr, double eps, double weight_decay):
    with nogil:
        adagrad_update_c(&param[0], &grad[0], &state_sum[0], param.shape[0], clr, eps, weight_decay)


cdef void update(int optimizer, floating* param, const floating* grad, floating* state,
                   Py_ssize_t n, const double* s) noexcept nogil:
    """The update of ``optimizer`` with its scalars ``s`` (flags stored as 0 or 1)."""
    if optimizer == SGD:
        sgd_update_c(param, grad, state, n, s[0], s[1], s[2], s[3] != 0, s[4])
    elif optimizer == RMSPROP:
        rmsprop_update_c(param, grad, state, n, s[0], s[1], s[2], s[3], s[4] != 0, s[5])
    elif optimizer == ADAM:
        adam_update_c(param, grad, state, n, s[0], s[1], s[2], s[3], s[4], s[5], s[6] != 0)
    else:
        adagrad_update_c(param, grad, state, n, s[0], s[1], s[2])
