"""The contract's composite kernels, built from a backend's per-layer kernels.

The ``python`` and ``numpy`` backends take ``output_loss``, ``network_forward``,
``network_loss_and_grads``, ``network_train_step`` and ``network_train_epoch`` from here;
compiled backends write their own (one compiled call a step, or an epoch) and are tested
against this composition. ``choose_network`` and ``choose_epoch`` give both compiled
backends their network entry points, which pick between the layered and the narrow-pair
kernels by ``tuning.narrow_pair``.
"""
import math

import numpy as np

from fastmlp.backends.contract import (A, CROSS_ENTROPY, DROPOUT, DZ, FAN_OUT, HIDDEN_ACT,
                                       IDENTITY, L1, L1_COEF, L2_COEF, LOSS, MSE, OUT, OUTPUT_ACT,
                                       SIGMOID, SOFTMAX, U, UPDATE_KERNELS, Z, update_state_rows)
from fastmlp.backends.layout import param_views, views
from fastmlp.backends.tuning import narrow_pair


def make_output_loss(k):
    """``output_loss`` for the backend whose kernels are the attributes of ``k``."""
    fused = {(SOFTMAX, CROSS_ENTROPY): "softmax_cross_entropy",
             (SIGMOID, CROSS_ENTROPY): "sigmoid_cross_entropy"}
    plain = {MSE: "mse_loss", L1: "l1_loss"}

    def output_loss(out_act, loss, Z, Y, P, dZ):
        if (out_act, loss) in fused:
            return getattr(k, fused[out_act, loss])(Z, Y, P, dZ)
        if loss not in plain:
            raise ValueError(f"no loss kernel for output {out_act} with loss {loss}")
        k.activation_forward(out_act, Z, P)
        value = getattr(k, plain[loss])(P, Y, dZ)
        k.activation_backward(out_act, P, dZ, dZ)
        return value

    return output_loss


def make_network_kernels(k):
    """``(network_forward, network_loss_and_grads)`` composed from ``k``'s kernels."""

    def forward(X, theta, work, layers, hidden_act, dropout):
        n = X.shape[0]
        params, acts, outs, uniforms = (param_views(theta, layers), views(work, layers, A, n),
                                        views(work, layers, OUT, n), views(work, layers, U, n))
        inp = X
        for l in range(len(layers) - 1):
            k.linear_forward(inp, params[2 * l], params[2 * l + 1], hidden_act, acts[l])
            if uniforms[l] is not None:
                k.dropout_apply(acts[l], uniforms[l], dropout, outs[l])
            inp = outs[l]
        last = views(work, layers, Z, n)[-1]
        k.linear_forward(inp, params[-2], params[-1], IDENTITY, last)
        return params, acts, outs, uniforms, last

    def network_forward(X, theta, work, layers, spec):
        *_, acts_out = forward(X, theta, work, layers, spec[HIDDEN_ACT], 0.0)
        k.activation_forward(spec[OUTPUT_ACT], acts_out, views(work, layers, A, X.shape[0])[-1])

    def network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs):
        n, hidden_act = X.shape[0], spec[HIDDEN_ACT]
        params, acts, outs, uniforms, last = forward(X, theta, work, layers, hidden_act,
                                                     coefs[DROPOUT])
        grads, deltas = param_views(grad, layers), views(work, layers, DZ, n)
        loss = k.output_loss(spec[OUTPUT_ACT], spec[LOSS], last, Y, acts[-1], deltas[-1])
        for l in range(len(layers) - 1, -1, -1):
            inp, d_inp = (outs[l - 1], deltas[l - 1]) if l else (X, None)
            k.linear_backward(inp, params[2 * l], deltas[l], grads[2 * l], grads[2 * l + 1], d_inp)
            if l and uniforms[l - 1] is not None:
                k.dropout_apply(d_inp, uniforms[l - 1], coefs[DROPOUT], d_inp)
            if l:
                k.activation_backward(hidden_act, acts[l - 1], d_inp, d_inp)
        if coefs[L1_COEF] or coefs[L2_COEF]:
            for W, dW in zip(params[::2], grads[::2]):
                loss += k.penalty(W, coefs[L1_COEF], coefs[L2_COEF], dW)
        return loss

    return network_forward, network_loss_and_grads


def make_update(k):
    """``update(optimizer, theta, grad, state, scalars)``: ``k``'s update kernel of that
    optimizer code, with the state rows it takes (call it once ``k``'s updates exist)."""
    # Per optimizer code: its update kernel, and whether that takes every state row.
    updates = [(getattr(k, name), update_state_rows(code) > 1)
               for code, name in enumerate(UPDATE_KERNELS)]

    def update(optimizer, theta, grad, state, scalars):
        kernel, all_rows = updates[optimizer]
        # Python floats, as the optimizers pass them: a NumPy float64 scalar would turn
        # float32 arithmetic into float64 (NEP 50).
        kernel(theta, grad, state if all_rows else state[0], *scalars.tolist())

    return update


def make_train_step(k):
    """``network_train_step`` composed from ``k``'s network and update kernels."""
    update = make_update(k)

    def network_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state,
                           scalars):
        loss = k.network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs)
        update(optimizer, theta, grad, state, scalars)
        return loss

    return network_train_step


def make_train_epoch(k, update=None):
    """``network_train_epoch`` composed from ``k``'s network and update kernels, or with
    ``update(optimizer, theta, grad, state, scalars)`` for the update when given."""
    update = update or make_update(k)

    def steps(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer, state,
              scalars, uniforms, saved, losses, correct, stop):
        """Steps 0..stop-1 of the contract's loop; the first diverged, or -1."""
        b, c = Xb.shape[0], losses.shape[1]
        for i in range(stop):
            e, j = divmod(i, c)
            rows = order[e, j * b:(j + 1) * b]
            m, plan = len(rows), layers[0 if len(rows) == b else 1]
            np.take(X, rows, 0, Xb[:m])
            np.take(Y, rows, 0, Yb[:m])
            if uniforms is not None:
                fill_uniforms(work, plan, uniforms[e], j * b, m)
            loss = losses[e, j] = k.network_loss_and_grads(Xb[:m], Yb[:m], theta, grad, work,
                                                           plan, spec, coefs)
            if not math.isfinite(loss):
                return i
            correct[e] += count_correct(views(work, plan, A, m)[-1], Yb[:m])
            if i == 0:  # the checkpoint; the state's only for a replay, of several steps
                saved[0] = theta
                if losses.size > 1:
                    saved[1:] = state
            update(optimizer, theta, grad, state, scalars[e, j])
        return -1

    def network_train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs,
                            optimizer, state, scalars, uniforms, saved, losses, correct):
        return train_epoch(steps, (X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs,
                                   optimizer, state, scalars, uniforms, saved, losses, correct))

    return network_train_epoch


def train_epoch(steps, args):
    """The contract's epoch around ``steps(*args, stop)``: the divergence rule."""
    theta, state, saved, losses = args[5], args[12], args[15], args[16]
    total = losses.size
    diverged = steps(*args, total)
    if diverged < 0 and (total == 1 or np.isfinite(theta).all()):
        return -1
    if not np.isfinite(theta).all():
        theta[...] = saved[0]
        if diverged != 0:  # replay up to the update before the last finite loss
            state[...] = saved[1:]
            steps(*args, (total if diverged < 0 else diverged) - 1)
    return total if diverged < 0 else diverged


def fill_uniforms(work, layers, uniforms, row, m):
    """Batch rows row..row+m-1's dropout uniforms into the U regions of ``work``."""
    at = row * sum(int(r[FAN_OUT]) for r in layers[:-1] if r[U] >= 0)
    for r in layers[:-1]:
        if r[U] >= 0:
            size = m * int(r[FAN_OUT])
            work[r[U]:r[U] + size] = uniforms[at:at + size]
            at += size


def count_correct(P, Y):
    """Rows whose output's class is Y's: argmax, or above 0.5 for one output."""
    if P.shape[1] > 1:
        return int(np.count_nonzero(P.argmax(axis=1) == Y.argmax(axis=1)))
    return int(np.count_nonzero((P[:, 0] > 0.5) == (Y[:, 0] > 0.5)))


def narrow_argument(narrow_loops, n_samples, layers, training=True):
    """The layered kernels' trailing arguments for a pass over ``n_samples`` rows: none
    without ``narrow_loops`` (a backend whose kernels take no ``narrow``), else ``narrow``:
    True if ``narrow_loops(n_samples, layers, training)`` holds, else None (the Numba
    backend then compiles no narrow loop in: ``tuning.narrow_loops``)."""
    if narrow_loops is None:
        return ()
    return (True if narrow_loops(n_samples, layers, training) else None,)


def choose_network(k, narrow_loops=None):
    """``(step_kernel, network_loss_and_grads, network_train_step)`` for a compiled backend
    whose module ``k`` has ``layered_*`` and ``narrow_pair_*`` kernels: each entry point
    asks ``narrow_pair`` which one runs (the model asks once per batch shape, by
    ``step_kernel``), and the layered one gets ``narrow_argument``."""

    def step_kernel(X, layers, spec):
        pair = narrow_pair(X.shape[0], layers, spec)
        if pair:
            return k.narrow_pair_train_step, pair
        return k.layered_train_step, narrow_argument(narrow_loops, X.shape[0], layers)

    def network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs):
        extra = pair = narrow_pair(X.shape[0], layers, spec)
        if not pair:
            extra = narrow_argument(narrow_loops, X.shape[0], layers)
        kernel = k.narrow_pair_loss_and_grads if pair else k.layered_loss_and_grads
        return kernel(X, Y, theta, grad, work, layers, spec, coefs, *extra)

    def network_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state,
                           scalars):
        kernel, extra = step_kernel(X, layers, spec)
        return kernel(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state, scalars,
                      *extra)

    return step_kernel, network_loss_and_grads, network_train_step


def choose_epoch(k, narrow_loops=None):
    """``(epoch_kernel, network_train_epoch)`` for a compiled backend whose module ``k`` has
    ``layered_train_epoch`` and ``narrow_pair_train_epoch``: the narrow-pair one when
    ``narrow_pair`` takes the full or the last batch; the layered one gets
    ``narrow_argument`` of the full batches. The last batch, if it alone would take a narrow
    loop (a weight gradient over 1 to 4 rows), takes the i-k-j loop or BLAS instead: one
    product an epoch, where compiling the narrow loops costs a first ``fit`` a minute. With
    ``narrow_loops`` (Numba) the narrow-pair one also gets ``layered``: None when every
    batch takes the pair, so that the layered step is not compiled in, else True."""

    def epoch_kernel(order, Xb, layers, spec):
        b, m = Xb.shape[0], order.shape[1] % Xb.shape[0] or Xb.shape[0]
        full, last = narrow_pair(b, layers[0], spec), narrow_pair(m, layers[1], spec)
        if not (full or last):
            return k.layered_train_epoch, narrow_argument(narrow_loops, b, layers[0])
        layered = () if narrow_loops is None else (None if full and last else True,)
        return k.narrow_pair_train_epoch, (bool(full), bool(last)) + (full or last) + layered

    def network_train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs,
                            optimizer, state, scalars, uniforms, saved, losses, correct):
        kernel, extra = epoch_kernel(order, Xb, layers, spec)
        return kernel(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                      state, scalars, uniforms, saved, losses, correct, *extra)

    return epoch_kernel, network_train_epoch
