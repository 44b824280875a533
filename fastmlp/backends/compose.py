"""The contract's composite kernels, built from a backend's per-layer kernels.

The ``python`` and ``numpy`` backends take ``output_loss``, ``network_forward``,
``network_loss_and_grads`` and ``network_train_step`` from here; compiled backends write their own
(one compiled call a step) and are tested against this composition. ``choose_network``
gives both compiled backends their network entry points, which pick between the layered
and the narrow-pair kernels by ``tuning.narrow_pair``.
"""
from fastmlp.backends.contract import (A, CROSS_ENTROPY, DROPOUT, DZ, HIDDEN_ACT, IDENTITY,
                                       L1, L1_COEF, L2_COEF, LOSS, MSE, OUT, OUTPUT_ACT, SIGMOID,
                                       SOFTMAX, U, UPDATE_KERNELS, Z, update_state_rows)
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


def make_train_step(k):
    """``network_train_step`` composed from ``k``'s network and update kernels (call it
    once ``k``'s update kernels exist)."""
    # Per optimizer code: its update kernel, and whether that takes every state row.
    updates = [(getattr(k, name), update_state_rows(code) > 1)
               for code, name in enumerate(UPDATE_KERNELS)]

    def network_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state,
                           scalars):
        loss = k.network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs)
        kernel, all_rows = updates[optimizer]
        # Python floats, as the optimizers pass them: a NumPy float64 scalar would turn
        # float32 arithmetic into float64 (NEP 50).
        kernel(theta, grad, state if all_rows else state[0], *scalars.tolist())
        return loss

    return network_train_step


def choose_network(k):
    """``(step_kernel, network_loss_and_grads, network_train_step)`` for a compiled backend
    whose module ``k`` has ``layered_*`` and ``narrow_pair_*`` kernels: each entry point
    asks ``narrow_pair`` which one runs (the model asks once per batch shape, by
    ``step_kernel``)."""

    def step_kernel(X, layers, spec):
        pair = narrow_pair(X.shape[0], layers, spec)
        return (k.narrow_pair_train_step, pair) if pair else (k.layered_train_step, ())

    def network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs):
        pair = narrow_pair(X.shape[0], layers, spec)
        kernel = k.narrow_pair_loss_and_grads if pair else k.layered_loss_and_grads
        return kernel(X, Y, theta, grad, work, layers, spec, coefs, *pair)

    def network_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state,
                           scalars):
        kernel, extra = step_kernel(X, layers, spec)
        return kernel(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state, scalars,
                      *extra)

    return step_kernel, network_loss_and_grads, network_train_step
