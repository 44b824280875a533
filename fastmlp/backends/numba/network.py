"""The whole network, layer by layer, over the flat buffers of ``fastmlp.backends.layout``.

``narrow`` is None when no product of the pass takes a narrow loop (``tuning.narrow_loops``,
asked by the backend's hooks): the loops are then not compiled in (``gemm``), which is most
of a first step's compile time; True, the entry points' default, compiles every path.
X is never unified with a work view in one variable (its type may differ, e.g. read-only),
hence the separate calls for the first layer.
"""
from fastmlp.backends.contract import (A, B, DROPOUT, DZ, FAN_IN, FAN_OUT, HIDDEN_ACT, IDENTITY,
                                       L1_COEF, L2_COEF, LOSS, OUT, OUTPUT_ACT, RELU, U, W, Z)
from fastmlp.backends.numba.elementwise import (activation_backward, activation_forward,
                                                dropout_apply, penalty)
from fastmlp.backends.numba.intrinsics import (borrowed, denormals_off, fp_control_restore,
                                              inline_jit, inline_kernel_jit, jit, kernel_jit,
                                              matrix_view)
from fastmlp.backends.numba.linear import linear_backward_relu, linear_forward
from fastmlp.backends.numba.losses import output_loss
from fastmlp.backends.numba.updates import update


@jit
def block(flat, offset, rows, cols):
    return matrix_view(flat[offset:offset + rows * cols], rows, cols)


@jit
def weights(theta, row):
    return block(theta, row[W], row[FAN_IN], row[FAN_OUT]), theta[row[B]:row[B] + row[FAN_OUT]]


@inline_jit
def forward(X, theta, work, layers, hidden_act, dropout, narrow):
    n, last = X.shape[0], layers.shape[0] - 1
    for l in range(last + 1):
        row = layers[l]
        Wl, bl = weights(theta, row)
        act, target = (IDENTITY, row[Z]) if l == last else (hidden_act, row[A])
        out = block(work, target, n, row[FAN_OUT])
        if l == 0:
            linear_forward(X, Wl, bl, act, out, narrow)
        else:
            linear_forward(block(work, layers[l - 1, OUT], n, row[FAN_IN]), Wl, bl, act, out,
                           narrow)
        if l < last and row[U] >= 0:
            dropout_apply(out, block(work, row[U], n, row[FAN_OUT]), dropout,
                          block(work, row[OUT], n, row[FAN_OUT]))


@kernel_jit
def network_forward(X, theta, work, layers, spec, narrow=True):
    X, theta, work, layers = borrowed((X, theta, work, layers))
    forward(X, theta, work, layers, spec[HIDDEN_ACT], 0.0, narrow)
    row, n = layers[-1], X.shape[0]
    activation_forward(spec[OUTPUT_ACT], block(work, row[Z], n, row[FAN_OUT]),
                       block(work, row[A], n, row[FAN_OUT]))


@inline_kernel_jit
def layered_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs, narrow=True):
    """network_loss_and_grads, layer by layer."""
    loss = forward_backward(X, Y, theta, grad, work, layers, spec, coefs, narrow)
    return loss + penalties(theta, grad, layers, coefs)


@inline_jit
def penalties(theta, grad, layers, coefs):
    """The L1 and L2 penalties of every weight matrix, their gradients added into grad."""
    value = 0.0
    if coefs[L1_COEF] != 0 or coefs[L2_COEF] != 0:
        for l in range(layers.shape[0]):
            value += penalty(weights(theta, layers[l])[0], coefs[L1_COEF], coefs[L2_COEF],
                             weights(grad, layers[l])[0])
    return value


@inline_jit
def forward_backward(X, Y, theta, grad, work, layers, spec, coefs, narrow):
    """Loss and gradients, penalties aside, with activations stored samples x units."""
    n, hidden_act, dropout = X.shape[0], spec[HIDDEN_ACT], coefs[DROPOUT]
    forward(X, theta, work, layers, hidden_act, dropout, narrow)
    row = layers[-1]
    loss = output_loss(spec[OUTPUT_ACT], spec[LOSS], block(work, row[Z], n, row[FAN_OUT]), Y,
                       block(work, row[A], n, row[FAN_OUT]),
                       block(work, row[DZ], n, row[FAN_OUT]))
    for l in range(layers.shape[0] - 1, -1, -1):
        row = layers[l]
        Wl, _ = weights(theta, row)
        dWl, dbl = weights(grad, row)
        dZl = block(work, row[DZ], n, row[FAN_OUT])
        if l == 0:
            linear_backward_relu(X, Wl, dZl, dWl, dbl, None, narrow, None)
            continue
        prev = layers[l - 1]
        inp, d_inp = block(work, prev[OUT], n, row[FAN_IN]), block(work, prev[DZ], n, row[FAN_IN])
        prev_act = block(work, prev[A], n, row[FAN_IN])
        # ReLU's and dropout's masks commute exactly (each keeps an entry or zeroes it, and
        # dropout's scaling of a zero is zero), so ReLU's derivative may come first, fused.
        if hidden_act == RELU:
            linear_backward_relu(inp, Wl, dZl, dWl, dbl, d_inp, narrow, prev_act)
        else:
            linear_backward_relu(inp, Wl, dZl, dWl, dbl, d_inp, narrow, None)
        if prev[U] >= 0:
            dropout_apply(d_inp, block(work, prev[U], n, row[FAN_IN]), dropout, d_inp)
        if hidden_act != RELU:
            activation_backward(hidden_act, prev_act, d_inp, d_inp)
    return loss


@kernel_jit
def layered_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state, scalars,
                       narrow=True):
    """network_train_step, layer by layer."""
    X, Y, theta, grad, work, layers, spec, coefs, state, scalars = borrowed(
        (X, Y, theta, grad, work, layers, spec, coefs, state, scalars))
    control = denormals_off()
    loss = layered_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs, narrow)
    update(optimizer, theta, grad, state, scalars)
    fp_control_restore(control)
    return loss
