"""The naive backend: explicit loops over Python floats, the honest baseline.

Kernels follow ``fastmlp.backends.contract``. Arrays are converted to lists at
the boundary (``tolist``), every number is a Python float inside the loops,
and results are written back into the caller's arrays in one assignment.
"""
import math
import sys

from fastmlp.backends import compose
from fastmlp.backends.contract import IDENTITY, RELU, SIGMOID, SOFTMAX, TANH


def _matmul(a, b):
    """Rows of ``a @ b`` for lists of rows (i-k-j order: the inner loop runs along a row)."""
    result = []
    for a_row in a:
        row = [0.0] * len(b[0])
        for a_ik, b_row in zip(a_row, b):
            for j, b_kj in enumerate(b_row):
                row[j] += a_ik * b_kj
        result.append(row)
    return result


def _transpose(a):
    return [list(column) for column in zip(*a)]


def _sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _softmax_row(z):
    peak = max(z)
    e = [math.exp(v - peak) for v in z]
    total = sum(e)
    return [v / total for v in e]


def _elementwise(f):
    return lambda rows: [[f(v) for v in row] for row in rows]


_FORWARD = {
    IDENTITY: lambda rows: rows,
    RELU: _elementwise(lambda z: max(z, 0.0)),  # a NaN z stays NaN, as in np.maximum
    SIGMOID: _elementwise(_sigmoid),
    TANH: _elementwise(math.tanh),
    SOFTMAX: lambda rows: [_softmax_row(row) for row in rows],
}


def _softmax_backward(a_row, d_row):
    s = sum(d * a for d, a in zip(d_row, a_row))
    return [a * (d - s) for a, d in zip(a_row, d_row)]


def _chain(derivative):
    """Backward pass of an elementwise activation from its ``derivative(a)``, a = f(z)."""
    return lambda a, d: [[dv * derivative(av) for av, dv in zip(a_row, d_row)]
                         for a_row, d_row in zip(a, d)]


_BACKWARD = {  # derivatives from the saved output a = f(z), as the forward pass kept it
    IDENTITY: lambda a, d: d,
    RELU: _chain(lambda a: 1.0 if a > 0 else 0.0),
    SIGMOID: _chain(lambda a: a * (1.0 - a)),
    TANH: _chain(lambda a: 1.0 - a * a),
    SOFTMAX: lambda a, d: [_softmax_backward(a_row, d_row) for a_row, d_row in zip(a, d)],
}


def _sign(v):
    return (v > 0) - (v < 0)


def matmul(A, B, out):
    out[...] = _matmul(A.tolist(), B.tolist())


def linear_forward(X, W, b, act, out):
    bias = b.tolist()
    z = [[v + bj for v, bj in zip(row, bias)] for row in _matmul(X.tolist(), W.tolist())]
    out[...] = _FORWARD[act](z)


def linear_backward(X, W, dZ, dW, db, dX):
    dz = dZ.tolist()
    dW[...] = _matmul(_transpose(X.tolist()), dz)
    db[...] = [sum(column) for column in zip(*dz)]
    if dX is not None:
        dX[...] = _matmul(dz, _transpose(W.tolist()))


def activation_forward(act, Z, out):
    out[...] = _FORWARD[act](Z.tolist())


def activation_backward(act, A, dA, out):
    out[...] = _BACKWARD[act](A.tolist(), dA.tolist())


def softmax_cross_entropy(Z, Y, P, dZ):
    z, y, n = Z.tolist(), Y.tolist(), Z.shape[0]
    loss, probs, grads = 0.0, [], []
    for z_row, y_row in zip(z, y):
        peak = max(z_row)
        lse = peak + math.log(sum(math.exp(v - peak) for v in z_row))
        p_row = [math.exp(v - lse) for v in z_row]
        loss += sum(t * (lse - v) for t, v in zip(y_row, z_row))
        probs.append(p_row)
        grads.append([(p - t) / n for p, t in zip(p_row, y_row)])
    P[...], dZ[...] = probs, grads
    return loss / n


def sigmoid_cross_entropy(Z, Y, P, dZ):
    z, y, size = Z.tolist(), Y.tolist(), Z.size
    probs = _FORWARD[SIGMOID](z)
    loss = sum(max(v, 0.0) - v * t + math.log1p(math.exp(-abs(v)))
               for z_row, y_row in zip(z, y) for v, t in zip(z_row, y_row))
    P[...] = probs
    dZ[...] = [[(p - t) / size for p, t in zip(p_row, y_row)] for p_row, y_row in zip(probs, y)]
    return loss / size


def _pointwise_loss(value, gradient):
    """A loss kernel from per-entry ``value(diff)`` and ``gradient(diff, size)``."""

    def loss_kernel(P, Y, dP):
        size = P.size
        diffs = [[p - t for p, t in zip(p_row, y_row)]
                 for p_row, y_row in zip(P.tolist(), Y.tolist())]
        dP[...] = [[gradient(d, size) for d in row] for row in diffs]
        return sum(value(d) for row in diffs for d in row) / size

    return loss_kernel


mse_loss = _pointwise_loss(lambda d: d * d, lambda d, size: 2.0 * d / size)
l1_loss = _pointwise_loss(abs, lambda d, size: _sign(d) / size)


def penalty(W, l1, l2, dW):
    w, dw = W.tolist(), dW.tolist()
    value = sum(l1 * abs(v) + 0.5 * l2 * v * v for row in w for v in row)
    dW[...] = [[g + l1 * _sign(v) + l2 * v for v, g in zip(w_row, g_row)]
               for w_row, g_row in zip(w, dw)]
    return value


def dropout_apply(A, U, p, out):
    keep = 1.0 - p
    out[...] = [[a / keep if u >= p else 0.0 for a, u in zip(a_row, u_row)]
                for a_row, u_row in zip(A.tolist(), U.tolist())]


def sgd_update(param, grad, momentum_buf, lr, momentum, dampening, nesterov, weight_decay):
    p, buf = param.tolist(), momentum_buf.tolist()
    for i, g in enumerate(grad.tolist()):
        g += weight_decay * p[i]
        if momentum != 0:
            buf[i] = momentum * buf[i] + (1 - dampening) * g
            g = g + momentum * buf[i] if nesterov else buf[i]
        p[i] -= lr * g
    param[...], momentum_buf[...] = p, buf


def rmsprop_update(param, grad, state, lr, alpha, eps, momentum, centered, weight_decay):
    p, (square_avg, grad_avg, buf) = param.tolist(), state.tolist()
    for i, g in enumerate(grad.tolist()):
        g += weight_decay * p[i]
        square_avg[i] = v = alpha * square_avg[i] + (1 - alpha) * g * g
        if centered:
            grad_avg[i] = alpha * grad_avg[i] + (1 - alpha) * g
            v -= grad_avg[i] * grad_avg[i]
        step = g / (math.sqrt(v) + eps)
        if momentum > 0:
            buf[i] = step = momentum * buf[i] + step
        p[i] -= lr * step
    param[...], state[...] = p, [square_avg, grad_avg, buf]


def adam_update(param, grad, state, step_size, beta1, beta2, eps, bias_correction2_sqrt,
                weight_decay, amsgrad):
    p, (m, v, v_max) = param.tolist(), state.tolist()
    for i, g in enumerate(grad.tolist()):
        g += weight_decay * p[i]
        m[i] = beta1 * m[i] + (1 - beta1) * g
        v[i] = beta2 * v[i] + (1 - beta2) * g * g
        if amsgrad:
            v_max[i] = max(v_max[i], v[i])
        second = v_max[i] if amsgrad else v[i]
        p[i] -= step_size * m[i] / (math.sqrt(second) / bias_correction2_sqrt + eps)
    param[...], state[...] = p, [m, v, v_max]


def adagrad_update(param, grad, state_sum, clr, eps, weight_decay):
    p, total = param.tolist(), state_sum.tolist()
    for i, g in enumerate(grad.tolist()):
        g += weight_decay * p[i]
        total[i] += g * g
        p[i] -= clr * g / (math.sqrt(total[i]) + eps)
    param[...], state_sum[...] = p, total


_this = sys.modules[__name__]
output_loss = compose.make_output_loss(_this)
network_forward, network_loss_and_grads = compose.make_network_kernels(_this)
network_train_step = compose.make_train_step(_this)
network_train_epoch = compose.make_train_epoch(_this)
