"""Losses, each fused with its output activation's gradient where the pair allows."""
import math

import numpy as np
from numba import types
from numba.extending import overload

from fastmlp.backends.contract import CROSS_ENTROPY, L1, MSE, SIGMOID, SOFTMAX
from fastmlp.backends.numba.elementwise import activation_backward, activation_forward, sigmoid
from fastmlp.backends.numba.intrinsics import flat_view, jit, kernel_jit, log_split, pow2


#: exp(x) = 2**n * exp(r) with x = n ln2 + r, |r| <= ln2 / 2 (Cody-Waite). LN2_HI has 16
#: significant bits, so n * LN2_HI is exact in float32 and float64 alike.
LN2_HI, LN2_LO = 0.693145751953125, 1.428606820309417232e-06


#: Taylor coefficients of exp(r), highest degree first: degree 13 is float64-accurate here.
EXP_TAYLOR = tuple(1 / math.factorial(d) for d in range(13, -1, -1))


@jit
def exp_nonpositive(x):
    """x = exp(x) in place, for a 1-D array of entries <= 0 (or NaN): one loop that LLVM
    vectorises, where math.exp is a libm call per entry (most of a small softmax's time)."""
    t = x.dtype.type
    log2e, hi, lo, half, zero = t(1 / math.log(2)), t(LN2_HI), t(LN2_LO), t(0.5), t(0)
    emin = t(-126) if x.itemsize == 4 else t(-1022)  # 2**n below this is not a normal number
    for i in range(x.size):
        v = x[i]
        n = np.floor(v * log2e + half)
        r = (v - n * hi) - n * lo
        p = t(EXP_TAYLOR[0])
        for c in EXP_TAYLOR[1:]:
            p = p * r + t(c)
        scale = pow2(n if n >= emin else emin)  # a NaN n is clamped too: p carries the NaN
        x[i] = zero if n < emin else p * scale


#: log(1 + f) = 2 atanh(s) = 2 s + s R for s = f / (2 + f), R = sum over d >= 1 of
#: 2 / (2 d + 1) s**(2 d), highest degree first. With 1 + f in [sqrt(1/2), sqrt(2)),
#: |s| <= 0.172: terms to degree 8 are float32-accurate, to degree 20 float64-accurate.
LOG_SERIES = {"float32": tuple(2 / (2 * d + 1) for d in range(4, 0, -1)),
              "float64": tuple(2 / (2 * d + 1) for d in range(10, 0, -1))}


def log_positive(v):
    """log(v) for a positive normal v (NaN gives NaN), branch-free so that a loop of it
    vectorises, where math.log is a libm call per entry (most of a narrow softmax's time)."""
    return math.log(v)


@overload(log_positive, jit_options={"error_model": "numpy"})
def _log_positive(v):
    if v not in (types.float32, types.float64):
        return None
    t = np.dtype(v.name).type  # every constant in v's precision: float32 stays float32
    one, half, two, hi, lo = t(1), t(0.5), t(2), t(LN2_HI), t(LN2_LO)
    series = tuple(map(t, LOG_SERIES[v.name]))

    def log_series(v):
        """fdlibm's log: v = (1 + f) 2**e, and the sum arranged so that it rounds once."""
        m, e = log_split(v)
        f = m - one
        s, half_square = f / (two + f), half * f * f
        z = s * s
        r = series[0]
        for c in series[1:]:
            r = r * z + c
        lower = half_square - (s * (half_square + r * z) + e * lo)
        return e * hi - (lower - f) + (v - v)  # v - v: NaN for a NaN v, else 0
    return log_series


@jit
def row_max(M, i):
    peak = M[i, 0]
    for j in range(1, M.shape[1]):
        peak = max(peak, M[i, j])
    return peak


@kernel_jit
def softmax_cross_entropy(Z, Y, P, dZ):
    n, k = Z.shape
    for i in range(n):  # shifted by the row's peak: exp cannot overflow
        peak = row_max(Z, i)
        for j in range(k):
            P[i, j] = Z[i, j] - peak
    exp_nonpositive(flat_view(P))
    loss, zero, one, inv_n = 0.0, Z.dtype.type(0), Z.dtype.type(1), Z.dtype.type(1 / n)
    for i in range(n):
        total = zero
        for j in range(k):
            total += P[i, j]
        lse, scale = row_max(Z, i) + math.log(total), one / total  # a division a row, not k
        for j in range(k):
            P[i, j] *= scale
            loss += Y[i, j] * (lse - Z[i, j])
            dZ[i, j] = (P[i, j] - Y[i, j]) * inv_n
    return loss / n


@kernel_jit
def sigmoid_cross_entropy(Z, Y, P, dZ):
    size = Z.size
    loss = 0.0
    for i in range(Z.shape[0]):
        for j in range(Z.shape[1]):
            z = Z[i, j]
            P[i, j] = sigmoid(z)
            loss += max(z, 0) - z * Y[i, j] + math.log1p(math.exp(-abs(z)))
            dZ[i, j] = (P[i, j] - Y[i, j]) / size
    return loss / size


@jit
def pointwise_loss(loss, P, Y, dP):
    """MSE or L1 over all entries, with the gradient into dP."""
    size = P.size
    total = 0.0
    for i in range(P.shape[0]):
        for j in range(P.shape[1]):
            d = P[i, j] - Y[i, j]
            if loss == MSE:
                total += d * d
                dP[i, j] = 2 * d / size
            else:
                total += abs(d)
                dP[i, j] = np.sign(d) / size
    return total / size


@kernel_jit
def mse_loss(P, Y, dP):
    return pointwise_loss(MSE, P, Y, dP)


@kernel_jit
def l1_loss(P, Y, dP):
    return pointwise_loss(L1, P, Y, dP)


@kernel_jit
def output_loss(out_act, loss, Z, Y, P, dZ):
    if loss == CROSS_ENTROPY and out_act == SOFTMAX:
        return softmax_cross_entropy(Z, Y, P, dZ)
    if loss == CROSS_ENTROPY and out_act == SIGMOID:
        return sigmoid_cross_entropy(Z, Y, P, dZ)
    activation_forward(out_act, Z, P)
    value = pointwise_loss(loss, P, Y, dZ)
    activation_backward(out_act, P, dZ, dZ)
    return value
