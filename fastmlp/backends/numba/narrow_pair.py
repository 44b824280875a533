"""One ReLU hidden layer between a few inputs and a few classes (``tuning.narrow_pair``).

The layer-by-layer step spends its time on rows of 2 or 3 numbers; these kernels store the
hidden activations, the logits and their gradient transposed (units x samples), so every
loop runs along a long contiguous row of samples, one pass forward and one backward. They
are compiled for the number of inputs and of classes (``literally``), only for those used.
"""
from numba import literally

from fastmlp.backends.contract import A, DZ, FAN_OUT, Z
from fastmlp.backends.numba.intrinsics import (borrowed, contract_jit, copy_into, denormals_off,
                                               flat_view, fp_control_restore, jit, kernel_jit,
                                               reassoc_jit, stack_matrix)
from fastmlp.backends.numba.losses import exp_nonpositive, log_positive
from fastmlp.backends.numba.network import block, penalties, weights
from fastmlp.backends.numba.updates import update
from fastmlp.backends.tuning import PAD_LANES, pair_columns


@jit
def softmax_cross_entropy_transposed(ZT, Y, P, dZT):
    """softmax_cross_entropy on transposed logits ZT (classes x samples): the gradient into
    dZT transposed, the probabilities into P as the contract has them (samples x classes),
    every loop along the samples, none with a sum across them but row_sum."""
    k, n = ZT.shape
    scratch = stack_matrix(ZT, k + 2, n)  # exp of each class, then each sample's peak, total
    E, peak, total = scratch[:k], scratch[k], scratch[k + 1]
    copy_into(ZT[0], peak)
    for j in range(1, k):
        z = ZT[j]
        for i in range(n):
            peak[i] = max(peak[i], z[i])
    for j in range(k):
        z, e = ZT[j], E[j]
        for i in range(n):
            e[i] = z[i] - peak[i]
    exp_nonpositive(flat_view(E))
    copy_into(E[0], total)
    for j in range(1, k):
        total += E[j]
    one, inv_n = ZT.dtype.type(1), ZT.dtype.type(1 / n)
    for i in range(n):
        peak[i] += log_positive(total[i])  # now the log-sum-exp
        total[i] = one / total[i]
    for j in range(k):
        e = E[j]
        for i in range(n):
            e[i] *= total[i]  # the probabilities, transposed
    loss = total  # each sample's loss, once the totals are used
    for i in range(n):
        loss[i] = 0
    for j in range(k):
        z, e, d = ZT[j], E[j], dZT[j]
        for i in range(n):
            y = Y[i, j]
            P[i, j] = e[i]
            d[i] = (e[i] - y) * inv_n
            loss[i] += y * (peak[i] - z[i])
    return row_sum(loss) / n


@reassoc_jit
def row_sum(row):
    """The sum of a row, in vector lanes: a running sum is a chain of dependent adds (the
    loss's and db2's 2 x 900 of spiral b300: its step 12.9 -> 12.4 us so)."""
    total = row.dtype.type(0)
    for i in range(row.size):
        total += row[i]
    return total


@contract_jit
def dot4(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]


@contract_jit
def column4(W, p, j):
    return W[p, j], W[p + 1, j], W[p + 2, j], W[p + 3, j]


@contract_jit
def unit_weights(kin, W1, b1, p):
    """Hidden unit p's input weights (padded to four) and bias, as scalars: loaded once,
    not in the loop over the samples, where LLVM could not tell them apart from its stores."""
    weights = W1[0, p], W1[min(1, kin - 1), p], W1[min(2, kin - 1), p], W1[min(3, kin - 1), p]
    return weights, b1[p], W1.dtype.type(0)


@contract_jit
def hidden_relu(kin, x, unit, i):
    """relu(bias + sum over q < kin of weight[q] * x[q][i]) for ``unit`` = (weights, bias,
    zero) of a hidden unit and x the rows of X.T."""
    (a0, a1, a2, a3), v, zero = unit
    v += a0 * x[0][i]
    if kin > 1:
        v += a1 * x[1][i]
    if kin > 2:
        v += a2 * x[2][i]
    if kin > 3:
        v += a3 * x[3][i]
    return zero if v <= 0 else v  # a NaN stays NaN, as in np.maximum


@contract_jit
def pair_forward(XT, W1, b1, W2, b2, HT, ZT, kin, kout):
    """HT = relu(W1.T @ XT + b1), ZT = W2.T @ HT + b2, four hidden units a pass over the
    samples: each unit's row is stored once and added into the kout logit rows at once.
    XT and HT have ``tuning.pair_columns(n)`` columns (XT's last ones zero), ZT n."""
    literally(kin)
    literally(kout)
    columns = XT.shape[1] // PAD_LANES * PAD_LANES  # all of them, known to be whole vectors
    x = (XT[0], XT[min(1, kin - 1)], XT[min(2, kin - 1)], XT[min(3, kin - 1)])
    # The logits add up on the stack: in ZT, a view of the work array like HT, LLVM could
    # not rule out that they overlap HT's rows, and the loop did not vectorise.
    logits = stack_matrix(ZT, kout, columns)
    z = (logits[0], logits[min(1, kout - 1)], logits[min(2, kout - 1)], logits[min(3, kout - 1)])
    for j in range(kout):
        logits[j, :] = b2[j]
    hidden, p = W1.shape[1], 0
    # Whole vectors only: a loop's scalar tail keeps every weight as a scalar beside its
    # broadcast in the vector loop, and four units' 2 x 24 spilled the broadcasts to the
    # stack. With no tail, four units a pass store 7 vectors where two stored 10 (AVX-512,
    # spiral b300 f32: 4.0-4.6 us a pass with two units and a tail, 3.5-3.7 us now).
    while p + 4 <= hidden:
        h0, h1, h2, h3 = HT[p], HT[p + 1], HT[p + 2], HT[p + 3]
        # W2[p:p + 4, j] as scalars: indexed by j inside the loop, they kept it scalar
        w0, w1, w2, w3 = (column4(W2, p, 0), column4(W2, p, min(1, kout - 1)),
                          column4(W2, p, min(2, kout - 1)), column4(W2, p, min(3, kout - 1)))
        u0, u1 = unit_weights(kin, W1, b1, p), unit_weights(kin, W1, b1, p + 1)
        u2, u3 = unit_weights(kin, W1, b1, p + 2), unit_weights(kin, W1, b1, p + 3)
        for i in range(columns):
            v = (hidden_relu(kin, x, u0, i), hidden_relu(kin, x, u1, i),
                 hidden_relu(kin, x, u2, i), hidden_relu(kin, x, u3, i))
            h0[i], h1[i], h2[i], h3[i] = v
            z[0][i] += dot4(w0, v)
            if kout > 1:
                z[1][i] += dot4(w1, v)
            if kout > 2:
                z[2][i] += dot4(w2, v)
            if kout > 3:
                z[3][i] += dot4(w3, v)
        p += 4
    for q in range(p, hidden):
        unit = unit_weights(kin, W1, b1, q)
        for i in range(columns):
            v = hidden_relu(kin, x, unit, i)
            HT[q, i] = v
            for j in range(kout):
                z[j][i] += W2[q, j] * v
    for j in range(kout):
        copy_into(logits[j, :ZT.shape[1]], ZT[j])


@reassoc_jit
def pair_backward(XT, HT, dZT, W2, dW1, db1, dW2, n, kin, kout):
    """dW2, db1 and dW1 of ``narrow_pair_train_step``, one pass over the n samples a
    hidden unit p: its kout dot products with dZT (dW2[p]), and its delta (dZT's rows
    weighted by W2[p], ReLU's mask applied) summed into db1[p] and dotted with X.T's rows
    into dW1[:, p], never stored."""
    literally(kin)
    literally(kout)
    x = (XT[0], XT[min(1, kin - 1)], XT[min(2, kin - 1)], XT[min(3, kin - 1)])
    dz = (dZT[0], dZT[min(1, kout - 1)], dZT[min(2, kout - 1)], dZT[min(3, kout - 1)])
    zero = HT.dtype.type(0)
    for p in range(HT.shape[0]):
        h, w = HT[p], W2[p]
        w0, w1, w2, w3 = w[0], w[min(1, kout - 1)], w[min(2, kout - 1)], w[min(3, kout - 1)]
        c0 = c1 = c2 = c3 = g0 = g1 = g2 = g3 = bias = zero
        for i in range(n):
            hv, z0 = h[i], dz[0][i]
            c0 += hv * z0
            d = w0 * z0
            if kout > 1:
                z1 = dz[1][i]
                c1 += hv * z1
                d += w1 * z1
            if kout > 2:
                z2 = dz[2][i]
                c2 += hv * z2
                d += w2 * z2
            if kout > 3:
                z3 = dz[3][i]
                c3 += hv * z3
                d += w3 * z3
            d = d if hv > 0 else zero
            bias += d
            g0 += x[0][i] * d
            if kin > 1:
                g1 += x[1][i] * d
            if kin > 2:
                g2 += x[2][i] * d
            if kin > 3:
                g3 += x[3][i] * d
        c, g = (c0, c1, c2, c3), (g0, g1, g2, g3)
        for j in range(kout):
            dW2[p, j] = c[j]
        for q in range(kin):
            dW1[q, p] = g[q]
        db1[p] = bias


@kernel_jit
def narrow_pair_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs, kin, kout):
    """network_loss_and_grads for ``tuning.narrow_pair``'s networks (X with kin columns,
    kout classes): the hidden layer, the logits and their gradient stored transposed (units
    x samples; the hidden layer's rows ``tuning.pair_columns(n)`` long) in their work
    regions, the output probabilities as the contract has them (fit reads them), and the
    hidden layer's gradient never stored."""
    literally(kin)
    literally(kout)
    n, hidden = X.shape[0], layers[0, FAN_OUT]
    columns = pair_columns(n)
    XT = stack_matrix(X, kin, columns)
    for i in range(n):  # kin a literal: its loop unrolls (gemm.transpose_into's does not)
        for q in range(kin):
            XT[q, i] = X[i, q]
    for q in range(kin):
        for i in range(n, columns):
            XT[q, i] = 0
    (W1, b1), (W2, b2) = weights(theta, layers[0]), weights(theta, layers[1])
    (dW1, db1), (dW2, db2) = weights(grad, layers[0]), weights(grad, layers[1])
    # HT's padded rows take the hidden layer's A region and the start of its DZ after it,
    # which the narrow pair does not use (layout.plan: 2 x hidden x n, columns <= 2 n).
    HT, ZT = block(work, layers[0, A], hidden, columns), block(work, layers[1, Z], kout, n)
    dZT = block(work, layers[1, DZ], kout, n)
    pair_forward(XT, W1, b1, W2, b2, HT, ZT, kin, kout)
    loss = softmax_cross_entropy_transposed(ZT, Y, block(work, layers[1, A], n, kout), dZT)
    pair_backward(XT, HT, dZT, W2, dW1, db1, dW2, n, kin, kout)
    for j in range(kout):
        db2[j] = row_sum(dZT[j])
    return loss + penalties(theta, grad, layers, coefs)


@kernel_jit
def narrow_pair_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state,
                           scalars, kin, kout):
    """network_train_step for ``tuning.narrow_pair``'s networks."""
    literally(kin)
    literally(kout)
    X, Y, theta, grad, work, layers, spec, coefs, state, scalars = borrowed(
        (X, Y, theta, grad, work, layers, spec, coefs, state, scalars))
    control = denormals_off()
    loss = narrow_pair_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs, kin, kout)
    update(optimizer, theta, grad, state, scalars)
    fp_control_restore(control)
    return loss
