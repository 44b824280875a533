"""Epochs of training steps in one call: the contract's ``network_train_epoch``, in the
order ``compose.make_train_epoch`` runs it (gather, step, loss, correct count, and the
divergence rule). Each step is the layered or the narrow-pair one of a training step; the
narrow-pair epoch is compiled for its number of inputs and classes, as its step is.
"""
import math

from numba import literally

from fastmlp.backends.contract import A, FAN_OUT, U
from fastmlp.backends.numba.intrinsics import (borrowed, copy_into, denormals_off, flat_view,
                                              fp_control_restore, inline_jit, jit, kernel_jit)
from fastmlp.backends.numba.narrow_pair import narrow_pair_loss_and_grads
from fastmlp.backends.numba.network import block, layered_loss_and_grads
from fastmlp.backends.numba.updates import update


@jit
def in_order(rows):
    """Whether ``rows`` are consecutive, as every batch of a fit without shuffling."""
    misses = 0
    for i in range(rows.size):
        misses += rows[i] != rows[0] + i
    return misses == 0


@jit
def copy_block(M, first, m, out):
    """out's first m rows = M[first:first + m], one flat copy."""
    k = M.shape[1]
    copy_into(flat_view(M)[first * k:(first + m) * k], flat_view(out)[:m * k])


@jit
def gather(X, Y, rows, Xb, Yb):
    """Xb[i], Yb[i] = X[rows[i]], Y[rows[i]] for i < rows.size; consecutive rows as one
    block (the spiral's 300 rows of 2 and 3 columns: 1.0 us row by row, 0.13 us so)."""
    m = rows.size
    if m and in_order(rows):
        copy_block(X, rows[0], m, Xb)
        copy_block(Y, rows[0], m, Yb)
        return
    for i in range(m):
        r = rows[i]
        for q in range(X.shape[1]):
            Xb[i, q] = X[r, q]
        for q in range(Y.shape[1]):
            Yb[i, q] = Y[r, q]


@jit
def fill_uniforms(work, layers, uniforms, row, m):
    """The dropout uniforms of batch rows row..row+m-1 into the U regions of ``work``."""
    units = 0
    for l in range(layers.shape[0] - 1):
        if layers[l, U] >= 0:
            units += layers[l, FAN_OUT]
    at = row * units
    for l in range(layers.shape[0] - 1):
        if layers[l, U] >= 0:
            size = m * layers[l, FAN_OUT]
            copy_into(uniforms[at:at + size], work[layers[l, U]:layers[l, U] + size])
            at += size


@jit
def count_correct(P, Y):
    """Rows whose output's class (argmax; above 0.5 for one output) is Y's."""
    k, hits = P.shape[1], 0
    for i in range(P.shape[0]):
        if k == 1:
            hits += (P[i, 0] > 0.5) == (Y[i, 0] > 0.5)
            continue
        p, top_p, y, top_y = 0, P[i, 0], 0, Y[i, 0]  # the maxima kept, not reloaded
        for j in range(1, k):
            if P[i, j] > top_p:
                p, top_p = j, P[i, j]
            if Y[i, j] > top_y:
                y, top_y = j, Y[i, j]
        hits += p == y
    return hits


@jit
def all_finite(a):
    for i in range(a.size):
        if not math.isfinite(a[i]):
            return False
    return True


@jit
def steps(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer, state,
          scalars, uniforms, saved, losses, correct, stop, pairs, kin, kout, narrow, layered):
    """Steps 0..stop-1 of the contract's loop (``kin`` None: layered steps only; ``layered``
    None: narrow-pair steps only); the first diverged, or -1. Numba prunes the branches on
    None before typing: the step an epoch never takes is not compiled."""
    b, c = Xb.shape[0], losses.shape[1]
    for i in range(stop):
        e, j = i // c, i % c
        start = j * b
        m = min(b, order.shape[1] - start)
        last = 0 if m == b else 1
        plan = layers[last]
        Xm, Ym = Xb[:m], Yb[:m]
        gather(X, Y, order[e, start:start + m], Xb, Yb)
        if uniforms is not None:
            fill_uniforms(work, plan, uniforms[e], start, m)
        if kin is not None and (layered is None or pairs[last]):
            loss = narrow_pair_loss_and_grads(Xm, Ym, theta, grad, work, plan, spec, coefs, kin,
                                              kout)
        else:
            loss = layered_loss_and_grads(Xm, Ym, theta, grad, work, plan, spec, coefs, narrow)
        losses[e, j] = loss
        if not math.isfinite(loss):
            return i
        out = plan[plan.shape[0] - 1]
        correct[e] += count_correct(block(work, out[A], m, out[FAN_OUT]), Ym)
        if i == 0:  # the checkpoint; the state's only for a replay, of several steps
            copy_into(theta, saved[0])
            if losses.size > 1:
                copy_into(state, saved[1:])
        update(optimizer, theta, grad, state, scalars[e, j])
    return -1


@inline_jit
def train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer, state,
                scalars, uniforms, saved, losses, correct, pairs, kin, kout, narrow, layered):
    """``guarded_steps`` with denormals flushed, as the training step has them."""
    X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs = borrowed(
        (X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs))
    state, scalars, uniforms, saved, losses, correct = borrowed(
        (state, scalars, uniforms, saved, losses, correct))
    control = denormals_off()
    result = guarded_steps(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs,
                           optimizer, state, scalars, uniforms, saved, losses, correct, pairs,
                           kin, kout, narrow, layered)
    fp_control_restore(control)
    return result


@inline_jit
def guarded_steps(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer, state,
                  scalars, uniforms, saved, losses, correct, pairs, kin, kout, narrow, layered):
    """The contract's epoch around ``steps``: the divergence rule."""
    total = losses.size
    diverged = steps(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                     state, scalars, uniforms, saved, losses, correct, total, pairs, kin, kout,
                     narrow, layered)
    if diverged < 0 and (total == 1 or all_finite(theta)):
        return -1
    if not all_finite(theta):
        copy_into(saved[0], theta)
        if diverged != 0:  # replay up to the update before the last finite loss
            copy_into(saved[1:], state)
            steps(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer, state,
                  scalars, uniforms, saved, losses, correct,
                  (total if diverged < 0 else diverged) - 1, pairs, kin, kout, narrow, layered)
    return total if diverged < 0 else diverged


@kernel_jit
def layered_train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                        state, scalars, uniforms, saved, losses, correct, narrow=True):
    """network_train_epoch, layer by layer (``narrow``: as in network.py)."""
    return train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                       state, scalars, uniforms, saved, losses, correct, (False, False), None,
                       None, narrow, True)


@kernel_jit
def narrow_pair_train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs,
                            optimizer, state, scalars, uniforms, saved, losses, correct,
                            full_pair, last_pair, kin, kout, layered=True):
    """network_train_epoch for ``tuning.narrow_pair``'s networks: the narrow-pair step for
    the full batches (``full_pair``) and the last (``last_pair``), the layered one (every
    narrow loop compiled in) else. ``layered`` None: every batch takes the narrow pair, and
    the layered step is not compiled in (``compose.layered_argument``; for a first ``fit``
    of the spiral, most of its compile time)."""
    literally(kin)
    literally(kout)
    return train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                       state, scalars, uniforms, saved, losses, correct, (full_pair, last_pair),
                       kin, kout, True, layered)
