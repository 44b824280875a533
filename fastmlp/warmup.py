"""``fastmlp warmup``: run every kernel path the library takes once, so that a JIT
backend's disk cache holds them all (for CI images and first installs).

A path is a compiled entry point and the argument types it is called with: the training
step and epoch of a layer-by-layer network (every activation, loss and optimizer is a value,
not a type: one compile covers them), twice: without the narrow loops and with them
(``tuning.narrow_loops``), the narrow-pair step and epoch for each number of inputs and
classes it is compiled for (``tuning.narrow_pair``), inference, loss and gradients alone,
the optimizers' update kernels as ``Optimizer.step`` calls them, and each contract kernel
called with C-contiguous arrays. Backends compiled ahead of time have nothing to warm.
"""
from __future__ import annotations

import numpy as np

from fastmlp import backends, optim
from fastmlp.backends import contract, tuning
from fastmlp.model import MLP

#: The backends that compile on first use and cache what they compiled on disk.
JIT_BACKENDS = ("numba",)
#: Sizes of the symbols of the contract's shape declarations, for the kernel calls.
SIZES = {"m": 8, "k": 6, "n": 5, "i": 4, "o": 3}
#: Codes of a valid call where code 0 is not (identity output with cross-entropy); a code
#: is a value, so any valid one compiles the same path.
CODES = {"out_act": contract.SOFTMAX}
#: The contract kernels a network entry point (``fit`` the epoch) or an optimizer warms.
COMPOSITE = ("network_forward", "network_loss_and_grads", "network_train_step",
             "network_train_epoch", *contract.UPDATE_KERNELS)


def _rows(n, features, classes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, features)).astype(dtype), rng.integers(0, classes, n)


#: Layer-by-layer networks and batches: one whose products take no narrow loop, one whose
#: products take them all (narrow-k forward and back, narrow-n, the one-pass weight grads).
LAYERED = {"layered network": ([6, 7, 4], 8),
           "layered network, narrow loops": ([3, 40, 40, 4], 64)}


def layered(backend, dtype, sizes, n):
    """The layer-by-layer paths: a step with each optimizer, an epoch of ``fit``, inference,
    loss and grads."""
    X, y = _rows(n, sizes[0], sizes[-1], dtype)
    model = MLP(sizes, backend=backend, dtype=dtype)
    for name in contract.OPTIMIZERS:
        model.make_step(X, y, name)()
    model.fit(X, y, epochs=1, batch_size=n, optimizer="adam", validation_data=(X, y),
              verbose=0)
    model.predict(X)
    model.evaluate(X, y)
    model.loss_and_grads(X, y)


def narrow_pair(backend, dtype, inputs, classes):
    """The narrow-pair step and its loss and grads, compiled for ``inputs`` and ``classes``,
    and its epochs: every batch of the pair, and a last batch too short for it."""
    n = tuning.MIN_LOOP_COLUMNS
    X, y = _rows(n + 1, inputs, classes, dtype)
    model = MLP([inputs, 8, classes], backend=backend, dtype=dtype)
    model.make_step(X[:n], y[:n], "adam")()
    for rows in (n, n + 1):
        model.fit(X[:rows], y[:rows], epochs=1, batch_size=n, optimizer="adam", verbose=0)
    model.loss_and_grads(X[:n], y[:n])


def updates(backend, dtype):
    """Each optimizer's update kernel, as ``Optimizer.step`` calls it."""
    params = [np.ones((3, 2), dtype), np.ones(2, dtype)]
    for name in contract.OPTIMIZERS:
        optim.get(name).step(params, [p * 0.1 for p in params], backend=backend)


def kernel_arguments(spec, dtype):
    """Arguments for a call of ``spec``'s kernel: arrays of the declared shapes (every
    optional one given), ``CODES`` or 0 for the codes and 0.1 for the other scalars."""
    args = {}
    for name in spec.params:
        array = spec.arrays.get(name)
        if array is None:
            args[name] = CODES.get(name, 0) if name in spec.codes else 0.1
            continue
        shape = tuple(d if isinstance(d, int) else SIZES[d] for d in array.dims)
        args[name] = np.full(shape, 0.5, array.dtype or dtype)
    return args


def kernels(backend, dtype):
    """Each contract kernel (and product variant) called once with C-contiguous arrays."""
    module = backends.get(backend)
    for name, spec in contract.KERNELS.items():
        if name not in COMPOSITE:
            getattr(module, name)(**kernel_arguments(spec, dtype))
    for hook, like in contract.CHECKED_HOOKS.items():
        getattr(module, hook)(**kernel_arguments(contract.KERNELS[like], dtype))


def tasks(backend, dtype):
    """``[(label, callable)]``: every path of ``backend`` in ``dtype``."""
    out = [(f"{backend} {dtype} {label}", lambda net=net: layered(backend, dtype, *net))
           for label, net in LAYERED.items()]
    out += [(f"{backend} {dtype} updates", lambda: updates(backend, dtype)),
           (f"{backend} {dtype} kernels", lambda: kernels(backend, dtype))]
    for inputs in range(1, tuning.NARROW_K + 1):
        for classes in range(2, tuning.NARROW_K + 1):
            out.append((f"{backend} {dtype} narrow pair {inputs}-{classes}",
                        lambda i=inputs, c=classes: narrow_pair(backend, dtype, i, c)))
    return out


def run(names=None, dtypes=("float32", "float64"), only=(), progress=True):
    """Warm every path of the JIT backends ``names`` (default: those available) in
    ``dtypes`` (only those whose label contains one of ``only``, if given); returns the
    labels of the paths warmed. Raises ValueError for a backend that is unavailable."""
    from tqdm import tqdm

    status = backends.available()
    names = list(names or [b for b in JIT_BACKENDS if status[b][0]])
    for name in names:
        if not status[name][0]:
            raise ValueError(f"backend {name!r} is unavailable: {status[name][1]}")
    todo = [t for name in names if name in JIT_BACKENDS for dtype in dtypes
            for t in tasks(name, dtype) if not only or any(o in t[0] for o in only)]
    with tqdm(todo, desc="fastmlp warmup", unit="path", disable=not progress) as bar:
        for label, task in bar:
            bar.set_postfix_str(label, refresh=True)
            task()
    return [label for label, _ in todo]
