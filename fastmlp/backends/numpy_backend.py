"""The vectorised NumPy backend: the reference every other backend is tested against.

Kernels follow ``fastmlp.backends.contract`` (see there for shapes and loops).
Clarity over speed: temporaries are allowed here, in-place ``out`` writes are kept.
"""
import sys

import numpy as np

from fastmlp.backends import compose
from fastmlp.backends.contract import IDENTITY, RELU, SIGMOID, SOFTMAX, TANH


def matmul(A, B, out):
    np.matmul(A, B, out=out)


def linear_forward(X, W, b, act, out):
    np.matmul(X, W, out=out)
    out += b
    activation_forward(act, out, out)


def linear_backward(X, W, dZ, dW, db, dX):
    np.matmul(X.T, dZ, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dX is not None:
        np.matmul(dZ, W.T, out=dX)


def _sigmoid(Z, out):
    e = np.exp(-np.abs(Z))
    out[...] = np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(Z, out):
    np.exp(Z - Z.max(axis=1, keepdims=True), out=out)
    out /= out.sum(axis=1, keepdims=True)


_FORWARD = {
    IDENTITY: lambda Z, out: np.copyto(out, Z),
    RELU: lambda Z, out: np.maximum(Z, 0, out=out),
    SIGMOID: _sigmoid,
    TANH: lambda Z, out: np.tanh(Z, out=out),
    SOFTMAX: _softmax,
}

_BACKWARD = {
    IDENTITY: lambda A, dA, out: np.copyto(out, dA),
    RELU: lambda A, dA, out: np.multiply(dA, A > 0, out=out),
    SIGMOID: lambda A, dA, out: np.multiply(dA, A * (1 - A), out=out),
    TANH: lambda A, dA, out: np.multiply(dA, 1 - A * A, out=out),
    SOFTMAX: lambda A, dA, out: np.multiply(A, dA - (dA * A).sum(axis=1, keepdims=True), out=out),
}


def activation_forward(act, Z, out):
    _FORWARD[act](Z, out)


def activation_backward(act, A, dA, out):
    _BACKWARD[act](A, dA, out)


def softmax_cross_entropy(Z, Y, P, dZ):
    n = Z.shape[0]
    peak = Z.max(axis=1, keepdims=True)
    lse = peak + np.log(np.exp(Z - peak).sum(axis=1, keepdims=True))
    np.exp(Z - lse, out=P)
    np.subtract(P, Y, out=dZ)
    dZ /= n
    return float((Y * (lse - Z)).sum() / n)


def sigmoid_cross_entropy(Z, Y, P, dZ):
    _sigmoid(Z, P)
    np.subtract(P, Y, out=dZ)
    dZ /= Z.size
    return float((np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))).sum() / Z.size)


def mse_loss(P, Y, dP):
    np.subtract(P, Y, out=dP)
    loss = float((dP * dP).sum() / P.size)
    dP *= 2 / P.size
    return loss


def l1_loss(P, Y, dP):
    np.subtract(P, Y, out=dP)
    loss = float(np.abs(dP).sum() / P.size)
    np.sign(dP, out=dP)
    dP /= P.size
    return loss


def penalty(W, l1, l2, dW):
    value = 0.0
    if l1:
        value += l1 * float(np.abs(W).sum())
        dW += l1 * np.sign(W)
    if l2:
        value += 0.5 * l2 * float((W * W).sum())
        dW += l2 * W
    return value


def dropout_apply(A, U, p, out):
    np.multiply(A, U >= p, out=out)
    out /= 1 - p


def sgd_update(param, grad, momentum_buf, lr, momentum, dampening, nesterov, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        momentum_buf *= momentum
        momentum_buf += (1 - dampening) * g
        g = g + momentum * momentum_buf if nesterov else momentum_buf
    param -= lr * g


def rmsprop_update(param, grad, state, lr, alpha, eps, momentum, centered, weight_decay):
    square_avg, grad_avg, momentum_buf = state
    g = grad + weight_decay * param if weight_decay else grad
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if centered:
        grad_avg *= alpha
        grad_avg += (1 - alpha) * g
        step = g / (np.sqrt(square_avg - grad_avg * grad_avg) + eps)
    else:
        step = g / (np.sqrt(square_avg) + eps)
    if momentum > 0:
        momentum_buf *= momentum
        momentum_buf += step
        step = momentum_buf
    param -= lr * step


def adam_update(param, grad, state, step_size, beta1, beta2, eps, bias_correction2_sqrt,
                weight_decay, amsgrad):
    exp_avg, exp_avg_sq, max_exp_avg_sq = state
    g = grad + weight_decay * param if weight_decay else grad
    exp_avg *= beta1
    exp_avg += (1 - beta1) * g
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    if amsgrad:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
    v = max_exp_avg_sq if amsgrad else exp_avg_sq
    param -= step_size * exp_avg / (np.sqrt(v) / bias_correction2_sqrt + eps)


def adagrad_update(param, grad, state_sum, clr, eps, weight_decay):
    g = grad + weight_decay * param if weight_decay else grad
    state_sum += g * g
    param -= clr * g / (np.sqrt(state_sum) + eps)


_this = sys.modules[__name__]
output_loss = compose.make_output_loss(_this)
network_forward, network_loss_and_grads = compose.make_network_kernels(_this)
network_train_step = compose.make_train_step(_this)
network_train_epoch = compose.make_train_epoch(_this)
