"""Activations, dropout and the weight penalty: one pass each, in place where they can be.

The activation branch is taken once, outside each loop, so that LLVM vectorises the loop.
Element-wise loops run in place on one array: when the output is an input, LLVM's runtime
overlap check sends a two-array loop to its scalar fallback (docs/performance.md).
"""
import math

import numpy as np

from fastmlp.backends.contract import IDENTITY, RELU, SIGMOID, SOFTMAX, TANH
from fastmlp.backends.numba.intrinsics import (copy_into, flat_view, inline_jit, jit, kernel_jit,
                                              reassoc_jit)


@jit
def sigmoid(z):
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


@jit
def into(source, out):
    """Make ``out`` hold ``source`` (nothing to do when they are the same memory)."""
    if source.ctypes.data != out.ctypes.data:
        copy_into(source, out)


@jit
def softmax_rows(out):
    for i in range(out.shape[0]):
        peak = out[i, 0]
        for j in range(out.shape[1]):
            peak = max(peak, out[i, j])
        total = 0.0
        for j in range(out.shape[1]):
            out[i, j] = math.exp(out[i, j] - peak)
            total += out[i, j]
        for j in range(out.shape[1]):
            out[i, j] /= total


@jit
def activate(act, out):
    """out = f_act(out) in place."""
    if act == SOFTMAX:
        softmax_rows(out)
        return
    flat = flat_view(out)
    zero = out.dtype.type(0)  # same type on both sides of the select: it vectorises
    if act == RELU:
        for i in range(flat.size):
            flat[i] = zero if flat[i] <= 0 else flat[i]  # a NaN stays NaN, as in np.maximum
    elif act == SIGMOID:
        for i in range(flat.size):
            flat[i] = sigmoid(flat[i])
    elif act == TANH:
        for i in range(flat.size):
            flat[i] = math.tanh(flat[i])


@jit
def bias_activation(out, b, act):
    """out = f_act(out + b) in place (b broadcast over rows), one pass for element-wise f."""
    rows, cols = out.shape
    zero = out.dtype.type(0)
    if act == RELU:
        for i in range(rows):
            for j in range(cols):
                v = out[i, j] + b[j]
                out[i, j] = zero if v <= 0 else v
        return
    for i in range(rows):
        for j in range(cols):
            out[i, j] += b[j]
    if act != IDENTITY:
        activate(act, out)


@kernel_jit
def activation_forward(act, Z, out):
    into(Z, out)
    activate(act, out)


@inline_jit
def relu_backward(A, out):
    """out = out where A > 0, else 0: ReLU's backward pass, in place. Inlined, and called
    by name where the activation is known (``linear_backward_relu``): a literal RELU
    passed to ``activation_backward`` compiled a second specialisation of it (Literal[int]
    beside int64), 0.3-0.9 s of a cold digits or MNIST step."""
    a, o = flat_view(A), flat_view(out)
    zero = out.dtype.type(0)
    for i in range(a.size):
        o[i] = o[i] if a[i] > 0 else zero


@kernel_jit
def activation_backward(act, A, dA, out):
    into(dA, out)
    if act == SOFTMAX:
        for i in range(A.shape[0]):
            s = 0.0
            for j in range(A.shape[1]):
                s += out[i, j] * A[i, j]
            for j in range(A.shape[1]):
                out[i, j] = A[i, j] * (out[i, j] - s)
        return
    if act == RELU:
        relu_backward(A, out)
        return
    a, o = flat_view(A), flat_view(out)
    if act == SIGMOID:
        for i in range(a.size):
            o[i] = o[i] * a[i] * (1 - a[i])
    elif act == TANH:
        for i in range(a.size):
            o[i] = o[i] * (1 - a[i] * a[i])


@reassoc_jit
def penalty_value(w, l1, l2):
    """``l1 * sum|w| + l2 * 0.5 * sum w**2`` over a flat array, summed in double over vector
    lanes: one running sum is a chain of dependent adds, as slow as a digits step's products."""
    squares, absolutes = 0.0, 0.0
    for i in range(w.size):
        squares += np.float64(w[i]) * w[i]
        absolutes += abs(np.float64(w[i]))
    return 0.5 * l2 * squares + l1 * absolutes


@kernel_jit
def penalty(W, l1, l2, dW):
    w, g = flat_view(W), flat_view(dW)
    value = penalty_value(w, l1, l2)
    l1_p, l2_p = W.dtype.type(l1), W.dtype.type(l2)  # in W's precision, as NumPy's NEP 50
    if l1 != 0:
        for i in range(w.size):
            g[i] += l1_p * np.sign(w[i]) + l2_p * w[i]
    else:
        for i in range(w.size):
            g[i] += l2_p * w[i]
    return value


@kernel_jit
def dropout_apply(A, U, p, out):
    into(A, out)
    o, u = flat_view(out), flat_view(U)
    keep, zero = 1 - p, out.dtype.type(0)
    for i in range(o.size):
        o[i] = o[i] / keep if u[i] >= p else zero
