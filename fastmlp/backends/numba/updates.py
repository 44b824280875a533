"""Optimizer updates: one fused pass over a flat parameter, its gradient and its state.

Each computes in the parameter's precision, its scalars rounded to it first, as the NumPy
reference does (NEP 50): in float32 the sqrt and the division vectorise twice as wide.
"""
import math

from fastmlp.backends.contract import ADAM, RMSPROP, SGD
from fastmlp.backends.numba.intrinsics import inline_kernel_jit, jit


@jit
def in_precision_of(param, x):
    return param.dtype.type(x)


@inline_kernel_jit
def sgd_update(param, grad, momentum_buf, lr, momentum, dampening, nesterov, weight_decay):
    rate, wd = in_precision_of(param, lr), in_precision_of(param, weight_decay)
    if momentum == 0:  # the common plain-SGD case, as its own vectorisable loop
        for i in range(param.size):
            param[i] -= rate * (grad[i] + wd * param[i])
        return
    mom, undamped = in_precision_of(param, momentum), in_precision_of(param, 1 - dampening)
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        momentum_buf[i] = mom * momentum_buf[i] + undamped * g
        g = g + mom * momentum_buf[i] if nesterov else momentum_buf[i]
        param[i] -= rate * g


@inline_kernel_jit
def rmsprop_update(param, grad, state, lr, alpha, eps, momentum, centered, weight_decay):
    square_avg, grad_avg, momentum_buf = state[0], state[1], state[2]
    rate, wd, eps_ = (in_precision_of(param, lr), in_precision_of(param, weight_decay),
                      in_precision_of(param, eps))
    decay, rest = in_precision_of(param, alpha), in_precision_of(param, 1 - alpha)
    if not centered and momentum == 0:  # the default, as its own vectorisable loop
        for i in range(param.size):
            g = grad[i] + wd * param[i]
            square_avg[i] = decay * square_avg[i] + rest * g * g
            param[i] -= rate * (g / (math.sqrt(square_avg[i]) + eps_))
        return
    mom = in_precision_of(param, momentum)
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        square_avg[i] = decay * square_avg[i] + rest * g * g
        v = square_avg[i]
        if centered:
            grad_avg[i] = decay * grad_avg[i] + rest * g
            v = v - grad_avg[i] * grad_avg[i]
        step = g / (math.sqrt(v) + eps_)
        if momentum > 0:
            momentum_buf[i] = mom * momentum_buf[i] + step
            step = momentum_buf[i]
        param[i] -= rate * step


@inline_kernel_jit
def adam_update(param, grad, state, step_size, beta1, beta2, eps, bias_correction2_sqrt,
                weight_decay, amsgrad):
    exp_avg, exp_avg_sq, max_exp_avg_sq = state[0], state[1], state[2]
    wd, b1, b2 = (in_precision_of(param, weight_decay), in_precision_of(param, beta1),
                  in_precision_of(param, beta2))
    rest1, rest2 = in_precision_of(param, 1 - beta1), in_precision_of(param, 1 - beta2)
    size, inverse, eps_ = (in_precision_of(param, step_size),
                           in_precision_of(param, 1 / bias_correction2_sqrt),
                           in_precision_of(param, eps))
    if not amsgrad:  # the default, as one vectorisable loop: one sqrt and one division each
        for i in range(param.size):
            g = grad[i] + wd * param[i]
            m = b1 * exp_avg[i] + rest1 * g
            v = b2 * exp_avg_sq[i] + rest2 * g * g
            exp_avg[i], exp_avg_sq[i] = m, v
            param[i] -= size * m / (math.sqrt(v) * inverse + eps_)
        return
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        exp_avg[i] = b1 * exp_avg[i] + rest1 * g
        exp_avg_sq[i] = b2 * exp_avg_sq[i] + rest2 * g * g
    for i in range(param.size):
        max_exp_avg_sq[i] = max(max_exp_avg_sq[i], exp_avg_sq[i])
    for i in range(param.size):
        param[i] -= size * exp_avg[i] / (math.sqrt(max_exp_avg_sq[i]) * inverse + eps_)


@inline_kernel_jit
def adagrad_update(param, grad, state_sum, clr, eps, weight_decay):
    rate, wd, eps_ = (in_precision_of(param, clr), in_precision_of(param, weight_decay),
                      in_precision_of(param, eps))
    for i in range(param.size):
        g = grad[i] + wd * param[i]
        state_sum[i] += g * g
        param[i] -= rate * g / (math.sqrt(state_sum[i]) + eps_)


@jit
def update(optimizer, param, grad, state, s):
    """The update kernel of ``optimizer`` with its scalars ``s`` (flags stored as 0 or 1).
    The four kernels are inlined (``inline_jit``): one compiled module for them all, which
    took a cold step's compile of the updates from 1.9 s to 1.0 s."""
    if optimizer == SGD:
        sgd_update(param, grad, state[0], s[0], s[1], s[2], s[3] != 0, s[4])
    elif optimizer == RMSPROP:
        rmsprop_update(param, grad, state, s[0], s[1], s[2], s[3], s[4] != 0, s[5])
    elif optimizer == ADAM:
        adam_update(param, grad, state, s[0], s[1], s[2], s[3], s[4], s[5], s[6] != 0)
    else:
        adagrad_update(param, grad, state[0], s[0], s[1], s[2])
