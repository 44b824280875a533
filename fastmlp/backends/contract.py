"""The kernel contract: every backend exports these names with these signatures.

A kernel is loops over arrays: it validates nothing, allocates nothing and writes
its results into the ``out``-style arrays the caller passes. Each stub below
documents one kernel; its ``@kernel`` decorator declares the arrays' shapes, so
that one generic checker (``KernelSpec.checked``) can guard every backend's
public kernels before compiled code is entered.

Shape notation used by ``@kernel``: ``"m,k"`` is a 2-D array whose dimensions
are bound to the symbols ``m`` and ``k`` (equal symbols must have equal sizes,
integers are literal sizes). Suffixes: ``!`` the kernel writes the array,
``?`` it may be ``None``, ``:int64`` / ``:float64`` a fixed dtype instead of the
float dtype (float32 or float64) shared by all the other arrays of the call.
"""
from __future__ import annotations

from fastmlp.backends.layout import (A, B, DZ, FAN_IN, FAN_OUT, LAYER_COLUMNS, OUT, U, W, Z,
                                     check_layers)
from fastmlp.backends.spec import FLOAT_DTYPES, ArraySpec, KernelSpec

#: Activation codes, shared by every backend (index = code).
ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh", "softmax")
IDENTITY, RELU, SIGMOID, TANH, SOFTMAX = range(5)

#: Loss codes (index = code).
LOSSES = ("cross_entropy", "mse", "l1")
CROSS_ENTROPY, MSE, L1 = range(3)

#: Optimizer codes of ``network_train_step`` (index = code), and the update kernel of each.
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adagrad")
SGD, RMSPROP, ADAM, ADAGRAD = range(4)
UPDATE_KERNELS = ("sgd_update", "rmsprop_update", "adam_update", "adagrad_update")

# The columns of the network kernels' ``layers`` table (LAYER_COLUMNS, FAN_IN ... DZ,
# imported above) belong to fastmlp.backends.layout; they are re-exported from here.

#: Entries of the ``spec`` (int64) and ``coefs`` (float64) vectors.
HIDDEN_ACT, OUTPUT_ACT, LOSS = range(3)
DROPOUT, L1_COEF, L2_COEF = range(3)

# ArraySpec and KernelSpec (fastmlp.backends.spec) parse the declarations and check calls.

#: name -> KernelSpec, in declaration order.
KERNELS: dict[str, KernelSpec] = {}


def kernel(codes=None, check=None, **arrays):
    """Declare a contract kernel: its array shapes, its code arguments."""

    def register(stub):
        parsed = {name: ArraySpec.parse(name, text) for name, text in arrays.items()}
        KERNELS[stub.__name__] = KernelSpec(stub, parsed, codes or {}, check)
        return stub

    return register


# ---------------------------------------------------------------- matrix products

@kernel(A="m,k", B="k,n", out="m,n!")
def matmul(A, B, out):
    """Matrix product into ``out``.

    ``A`` (m, k), ``B`` (k, n) -> ``out`` (m, n)::

        for i, j: out[i, j] = sum_p A[i, p] * B[p, j]
    """


@kernel(codes={"act": ACTIVATIONS}, X="n,i", W="i,o", b="o", out="n,o!")
def linear_forward(X, W, b, act, out):
    """Dense layer, bias and activation fused: ``out = act(X @ W + b)``.

    ``X`` (n_samples, fan_in), ``W`` (fan_in, fan_out), ``b`` (fan_out,) ->
    ``out`` (n_samples, fan_out)::

        out = X @ W
        for i, j: out[i, j] = f_act(out[i, j] + b[j])   # softmax: row-wise
    """


@kernel(X="n,i", W="i,o", dZ="n,o", dW="i,o!", db="o!", dX="n,i!?")
def linear_backward(X, W, dZ, dW, db, dX):
    """Gradients of a dense layer from the gradient ``dZ`` of its pre-activation.

    ``dW = X.T @ dZ``, ``db = dZ.sum(axis=0)``, and ``dX = dZ @ W.T`` unless
    ``dX`` is None (the first layer needs no input gradient). All overwritten.
    """


# ---------------------------------------------------------------- activations

@kernel(codes={"act": ACTIVATIONS}, Z="n,o", out="n,o!")
def activation_forward(act, Z, out):
    """``out = f_act(Z)``; ``out`` may be ``Z``.

    identity: z; relu: max(z, 0); sigmoid: 1 / (1 + exp(-z)) evaluated stably
    (exp(z) / (1 + exp(z)) for z < 0); tanh; softmax: row-wise, max-shifted::

        for i, j: out[i, j] = f(Z[i, j])
    """


@kernel(codes={"act": ACTIVATIONS}, A="n,o", dA="n,o", out="n,o!")
def activation_backward(act, A, dA, out):
    """Gradient through an activation from its saved output ``A``; ``out`` may be ``dA``.

    identity: dA; relu: dA * (A > 0); sigmoid: dA * A * (1 - A);
    tanh: dA * (1 - A**2); softmax (row-wise Jacobian product)::

        for i: s = sum_j dA[i, j] * A[i, j]
               for j: out[i, j] = A[i, j] * (dA[i, j] - s)
    """


# ---------------------------------------------------------------- losses
# Every loss is a mean over the batch; returned as a Python float (or float64).

@kernel(Z="n,k", Y="n,k", P="n,k!", dZ="n,k!")
def softmax_cross_entropy(Z, Y, P, dZ):
    """Softmax and categorical cross-entropy fused; returns the loss.

    ``Y`` rows are probability vectors (one-hot for class labels)::

        for i: lse = log(sum_j exp(Z[i, j] - max_i)) + max_i
               P[i] = exp(Z[i] - lse)
               loss += sum_j Y[i, j] * (lse - Z[i, j])
               dZ[i] = (P[i] - Y[i]) / n
        return loss / n
    """


@kernel(Z="n,k", Y="n,k", P="n,k!", dZ="n,k!")
def sigmoid_cross_entropy(Z, Y, P, dZ):
    """Sigmoid and binary cross-entropy fused, mean over all n*k entries::

        for i, j: P[i, j] = sigmoid(Z[i, j])
                  loss += max(z, 0) - z * y + log1p(exp(-|z|))
                  dZ[i, j] = (P[i, j] - Y[i, j]) / (n * k)
        return loss / (n * k)
    """


@kernel(P="n,k", Y="n,k", dP="n,k!")
def mse_loss(P, Y, dP):
    """Mean squared error over all n*k entries; ``dP`` its gradient::

        for i, j: loss += (P[i, j] - Y[i, j])**2
                  dP[i, j] = 2 * (P[i, j] - Y[i, j]) / (n * k)
        return loss / (n * k)
    """


@kernel(P="n,k", Y="n,k", dP="n,k!")
def l1_loss(P, Y, dP):
    """Mean absolute error over all n*k entries; ``dP`` its (sub)gradient::

        for i, j: loss += |P[i, j] - Y[i, j]|
                  dP[i, j] = sign(P[i, j] - Y[i, j]) / (n * k)   # sign(0) = 0
        return loss / (n * k)
    """


@kernel(codes={"out_act": ACTIVATIONS, "loss": LOSSES}, Z="n,k", Y="n,k", P="n,k!", dZ="n,k!")
def output_loss(out_act, loss, Z, Y, P, dZ):
    """Output activation, loss and gradient w.r.t. the output pre-activation ``Z``.

    softmax + cross_entropy and sigmoid + cross_entropy use the fused kernels;
    any other pair runs ``P = f(Z)``, the loss kernel into ``dZ``, then
    ``activation_backward(out_act, P, dZ, dZ)``. Identity + cross_entropy is
    not a valid pair (the model refuses it). Returns the loss.
    """


@kernel(W="i,o", dW="i,o!")
def penalty(W, l1, l2, dW):
    """Weight penalty ``l1 * ||W||_1 + l2 * 0.5 * ||W||_2^2``; adds its gradient to ``dW``::

        for i, j: value += l1 * |W[i, j]| + 0.5 * l2 * W[i, j]**2
                  dW[i, j] += l1 * sign(W[i, j]) + l2 * W[i, j]
        return value
    """


@kernel(A="n,o", U="n,o", out="n,o!")
def dropout_apply(A, U, p, out):
    """Inverted dropout with the uniforms ``U`` in [0, 1); ``out`` may be ``A``.

    The same call applies the mask to activations (forward) and to their
    gradients (backward)::

        for i, j: out[i, j] = A[i, j] / (1 - p) if U[i, j] >= p else 0
    """


# ---------------------------------------------------------------- optimizer updates
# One fused pass over a flat parameter, its gradient and its state, in place, with
# exactly torch.optim's update rules; the Python optimizer precomputes the scalars.

@kernel(param="n!", grad="n", momentum_buf="n!")
def sgd_update(param, grad, momentum_buf, lr, momentum, dampening, nesterov, weight_decay):
    """SGD with momentum and Nesterov (``torch.optim.SGD``)::

        for i: g = grad[i] + weight_decay * param[i]
               if momentum != 0:
                   momentum_buf[i] = momentum * momentum_buf[i] + (1 - dampening) * g
                   g = g + momentum * momentum_buf[i] if nesterov else momentum_buf[i]
               param[i] -= lr * g

    torch starts the buffer at the first gradient: the caller passes a zero
    buffer and ``dampening=0`` on the first step, which gives the same result.
    """


@kernel(param="n!", grad="n", state="3,n!")
def rmsprop_update(param, grad, state, lr, alpha, eps, momentum, centered, weight_decay):
    """RMSprop (``torch.optim.RMSprop``); ``state`` rows: square_avg, grad_avg, momentum_buf::

        for i: g = grad[i] + weight_decay * param[i]
               v = state[0, i] = alpha * state[0, i] + (1 - alpha) * g * g
               if centered:
                   m = state[1, i] = alpha * state[1, i] + (1 - alpha) * g
                   v = v - m * m
               step = g / (sqrt(v) + eps)
               if momentum > 0:
                   step = state[2, i] = momentum * state[2, i] + step
               param[i] -= lr * step
    """


@kernel(param="n!", grad="n", state="3,n!")
def adam_update(param, grad, state, step_size, beta1, beta2, eps, bias_correction2_sqrt,
                weight_decay, amsgrad):
    """Adam (``torch.optim.Adam``); ``state`` rows: exp_avg, exp_avg_sq, max_exp_avg_sq.

    ``step_size = lr / (1 - beta1**t)``, ``bias_correction2_sqrt = sqrt(1 - beta2**t)``::

        for i: g = grad[i] + weight_decay * param[i]
               m = state[0, i] = beta1 * state[0, i] + (1 - beta1) * g
               v = state[1, i] = beta2 * state[1, i] + (1 - beta2) * g * g
               if amsgrad: v = state[2, i] = max(state[2, i], v)
               param[i] -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
    """


@kernel(param="n!", grad="n", state_sum="n!")
def adagrad_update(param, grad, state_sum, clr, eps, weight_decay):
    """Adagrad (``torch.optim.Adagrad``); ``clr = lr / (1 + (t - 1) * lr_decay)``::

        for i: g = grad[i] + weight_decay * param[i]
               state_sum[i] += g * g
               param[i] -= clr * g / (sqrt(state_sum[i]) + eps)
    """


# ---------------------------------------------------------------- whole network
# Flat buffers and an offset table keep these kernels to a handful of arguments,
# so a compiled backend can run a whole training step in one call.

def _check_network(args):
    training = "Y" in args
    layers = args["layers"]
    check_layers(layers, args["X"].shape[0], args["theta"].size, args["work"].size,
                        args["X"].shape[1], training)
    if training and args["Y"].shape[1] != layers[-1, FAN_OUT]:
        raise ValueError(f"Y has {args['Y'].shape[1]} columns, the network has "
                         f"{layers[-1, FAN_OUT]} outputs")
    _check_codes(args["spec"])


def _check_codes(spec):
    for index, table in ((HIDDEN_ACT, ACTIVATIONS), (OUTPUT_ACT, ACTIVATIONS), (LOSS, LOSSES)):
        if not 0 <= spec[index] < len(table):
            raise ValueError(f"spec[{index}] must be a code 0..{len(table) - 1} for {table}, "
                             f"got {spec[index]}")


@kernel(check=_check_network, X="n,d", theta="t", work="w!", layers="L,9:int64",
        spec="3:int64")
def network_forward(X, theta, work, layers, spec):
    """Inference pass of the whole network (dropout off).

    ``layers`` comes from ``fastmlp.backends.layout.plan(..., training=False)``. Writes
    every layer's output into ``work``; the last layer's ``Z`` and ``A``
    (probabilities) included::

        inp = X
        for l in range(L - 1): inp = A_l = linear_forward(inp, W_l, b_l, hidden_act)
        Z_L = linear_forward(inp, W_L, b_L, identity); A_L = f_out(Z_L)
    """


@kernel(check=_check_network, X="n,d", Y="n,k", theta="t", grad="t!", work="w!",
        layers="L,9:int64", spec="3:int64", coefs="3:float64")
def network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs):
    """Forward, loss, backward and penalties of the whole network; returns the loss.

    ``layers`` comes from ``fastmlp.backends.layout.plan(..., training=True)``; a hidden
    layer whose ``U`` column is not -1 applies dropout with the uniforms the
    caller wrote there. ``grad`` is overwritten (same layout as ``theta``).
    Afterwards ``A_L`` holds the output probabilities (``fit`` reads them); the
    other work regions are scratch in a layout of the backend's choosing (the
    compiled backends store a narrow pair's activations units x samples)::

        forward as in network_forward, then A_l -> OUT_l = dropout_apply(A_l, U_l, p)
        loss = output_loss(out_act, loss, Z_L, Y, A_L, DZ_L)
        for l = L..1: linear_backward(OUT_{l-1} or X, W_l, DZ_l, dW_l, db_l, DZ_{l-1} or None)
                      DZ_{l-1} = dropout_apply(DZ_{l-1}, U_{l-1}, p)   # if dropout
                      DZ_{l-1} = activation_backward(hidden_act, A_{l-1}, DZ_{l-1})
        for l: loss += penalty(W_l, l1, l2, dW_l)
    """


def update_scalars(optimizer):
    """Names of the scalar arguments of optimizer ``optimizer``'s update kernel, in order."""
    spec = KERNELS[UPDATE_KERNELS[optimizer]]
    return tuple(p for p in spec.params if p not in spec.arrays)


def update_state_rows(optimizer):
    """Rows of optimizer state its update kernel reads: 1 for a 1-D state argument."""
    state = list(KERNELS[UPDATE_KERNELS[optimizer]].arrays.values())[2]
    return state.dims[0] if len(state.dims) == 2 else 1


def _check_train_step(args):
    _check_network(args)
    optimizer, name = args["optimizer"], UPDATE_KERNELS[args["optimizer"]]
    rows, names = update_state_rows(optimizer), update_scalars(optimizer)
    if args["state"].shape[0] != rows:
        raise ValueError(f"state must have {rows} row(s) for {name}, got {args['state'].shape[0]}")
    if args["scalars"].size != len(names):
        raise ValueError(f"scalars must hold {name}'s {len(names)} scalars {names}, got "
                         f"{args['scalars'].size} values")


@kernel(codes={"optimizer": OPTIMIZERS}, check=_check_train_step, X="n,d", Y="n,k",
        theta="t!", grad="t!", work="w!", layers="L,9:int64", spec="3:int64",
        coefs="3:float64", state="r,t!", scalars="s:float64")
def network_train_step(X, Y, theta, grad, work, layers, spec, coefs, optimizer, state, scalars):
    """A whole training step: loss and gradients, then the optimizer's update of ``theta``.

    ``optimizer`` is a code of ``OPTIMIZERS``; ``state`` its state rows over
    ``theta`` and ``scalars`` the scalar arguments of its update kernel, in that
    kernel's order (``update_scalars``; flags as 0 or 1), as the Python
    optimizer computes them for this step. Returns the loss before the update::

        loss = network_loss_and_grads(X, Y, theta, grad, work, layers, spec, coefs)
        update = UPDATE_KERNELS[optimizer]               # e.g. adam_update
        update(theta, grad, state if 3 rows else state[0], *scalars)
        return loss
    """


def _check_train_epoch(args):
    layers, order, Xb, n = args["layers"], args["order"], args["Xb"], args["X"].shape[0]
    b, rows = Xb.shape[0], order.shape[1]
    if not b * (args["losses"].shape[1] - 1) < rows <= b * args["losses"].shape[1]:
        raise ValueError(f"order has {rows} rows an epoch: losses and scalars must have "
                         f"ceil({rows} / {b}) columns (batches of Xb's {b} rows), got "
                         f"{args['losses'].shape[1]}")
    if order.min() < 0 or order.max() >= n:
        raise ValueError(f"order must hold row indices of X, 0..{n - 1}, got values "
                         f"{order.min()}..{order.max()}")
    for at, m in ((0, min(b, rows)), (1, rows % b or min(b, rows))):
        _check_train_step(dict(args, X=Xb[:m], Y=args["Yb"][:m], layers=layers[at],
                               scalars=args["scalars"][0, 0]))
    hidden = int(sum(r[FAN_OUT] for r in layers[0, :-1] if r[U] >= 0))
    uniforms = args["uniforms"]
    if (uniforms is None) != (hidden == 0) or (hidden and uniforms.shape[1] != rows * hidden):
        expected = "None" if not hidden else f"(epochs, {rows * hidden})"
        raise ValueError(f"uniforms must be {expected}"
                         f" for this layout (dropout regions of {hidden} units a row), got "
                         f"{None if uniforms is None else uniforms.shape}")
    if args["saved"].shape[0] != 1 + args["state"].shape[0]:
        raise ValueError(f"saved must have 1 + {args['state'].shape[0]} rows (theta and the "
                         f"state), got {args['saved'].shape[0]}")


@kernel(codes={"optimizer": OPTIMIZERS}, check=_check_train_epoch, X="n,d", Y="n,k",
        order="e,r:int64", Xb="b,d!", Yb="b,k!", theta="t!", grad="t!", work="w!",
        layers="2,L,9:int64", spec="3:int64", coefs="3:float64", state="q,t!",
        scalars="e,c,s:float64", uniforms="e,u?", saved="p,t!", losses="e,c!:float64",
        correct="e!:int64")
def network_train_epoch(X, Y, order, Xb, Yb, theta, grad, work, layers, spec, coefs, optimizer,
                        state, scalars, uniforms, saved, losses, correct):
    """Epochs of training steps in one call; returns the step that diverged, or -1.

    Epoch ``e`` takes the rows ``order[e]`` of ``X`` and ``Y`` (a permutation, or in order)
    in ``c = ceil(r / b)`` batches of ``b`` rows (``Xb``, ``Yb``: the batch buffers), the
    last one shorter. ``layers[0]`` lays out a full batch in ``work``, ``layers[1]`` the
    last batch. ``scalars[e, j]`` are the update's scalars of batch j (``network_train_step``),
    ``uniforms[e]`` the dropout uniforms of the epoch, batch after batch and layer after
    layer (None without dropout). Step ``i = e * c + j``::

        for e, j: rows = order[e, j*b:(j+1)*b]; m = len(rows)
                  Xb[:m], Yb[:m] = X[rows], Y[rows]; U regions <- uniforms[e], next m*units
                  loss = losses[e, j] = network_loss_and_grads(Xb[:m], Yb[:m], ...)
                  if loss is not finite: stop, without this update: return i
                  correct[e] += rows whose output's argmax is Y's (> 0.5 for one output)
                  if i == 0: saved[0], saved[1:] = theta, state     # the checkpoint
                  update(optimizer, theta, grad, state, scalars[e, j])
        if theta is not finite after the last of several steps: return e * c (all steps)

    On a divergence theta keeps the parameters of the last finite loss: at step i with
    theta not finite (step i-1's update made it so), theta and state are restored from
    ``saved`` and steps 0..i-2 replayed (at i == 0, theta is ``saved[0]``: the start of
    a call before, of one step); after the last step, the same gives the parameters
    before the last update and the return value ``e * c`` names the next call's first
    step. ``correct`` is then undefined. No parameter copy but the checkpoint a call.
    """


KERNEL_NAMES = tuple(KERNELS)


# ---------------------------------------------------------------- optional hooks
# What a backend module may define besides the kernels. ``backends.Backend`` takes the
# module's own function where it has one, else the default below bound to the module.

def default_step_kernel(kernels, X, layers, spec):
    """Hook ``step_kernel(X, layers, spec) -> (kernel, extra)``: the training-step kernel for
    this network and batch, called as ``kernel(*network_train_step's arguments, *extra)``.
    Default: ``(kernels.network_train_step, ())``."""
    return kernels.network_train_step, ()


def default_forward_kernel(kernels, X, layers, spec):
    """Hook ``forward_kernel(X, layers, spec) -> (kernel, extra)``: the inference kernel for
    this network and batch, called as ``kernel(*network_forward's arguments, *extra)``.
    Default: ``(kernels.network_forward, ())``."""
    return kernels.network_forward, ()


def default_specialise(kernels, kernel, args, literals=()):
    """Hook ``specialise(kernel, args, literals=()) -> kernel``: ``kernel`` bound to the
    types of ``args`` and of the trailing ``literals`` (the values of the integers among
    them), for a caller whose arguments keep exactly those. Default: ``kernel`` itself."""
    return kernel


def default_epoch_kernel(kernels, order, Xb, layers, spec):
    """Hook ``epoch_kernel(order, Xb, layers, spec) -> (kernel, extra)``: the epoch kernel
    for these batches, called as ``kernel(*network_train_epoch's arguments, *extra)``; a
    narrow-pair kernel's ``extra`` is ``(full_pair, last_pair, kin, kout)`` (Numba's adds
    ``layered``), of which ``specialise`` takes the integers as literals. Default:
    ``(kernels.network_train_epoch, ())``."""
    return kernels.network_train_epoch, ()


def default_kernel_extra(kernels, name, args):
    """Hook ``kernel_extra(name, args) -> extra``: the trailing arguments of the kernel
    ``name`` for its contract arguments ``args``, a backend's compile-time choices for these
    shapes (Numba's ``narrow``), which the checked kernels and the harness pass, as
    ``kernel(*args, *extra)``. Default: ``()``."""
    return ()


def default_matmul_variant(kernels, A, B, out):
    """Hooks ``matmul_blocked`` (an own cache-blocked loop) and ``matmul_blas`` (BLAS
    alone), arguments as ``matmul``; the harness times them. Default: ``kernels.matmul``."""
    kernels.matmul(A, B, out)


#: Hook name -> default (called with the backend module first).
HOOKS = {"step_kernel": default_step_kernel, "epoch_kernel": default_epoch_kernel,
         "forward_kernel": default_forward_kernel, "kernel_extra": default_kernel_extra,
         "specialise": default_specialise,
         "matmul_blocked": default_matmul_variant, "matmul_blas": default_matmul_variant}
#: Hooks taking arrays, checked as the kernel named here.
CHECKED_HOOKS = {"matmul_blocked": "matmul", "matmul_blas": "matmul"}
