"""The Numba backend: every contract kernel compiled with ``@njit(cache=True)``, the
helpers they call without the wrapper a call from Python takes (``intrinsics.compiled``).

Kernels follow ``fastmlp.backends.contract`` (see there for shapes and loops), and pick
their paths by ``fastmlp.backends.tuning``. The modules mirror the Cython backend's, name
for name: ``gemm`` (products), ``blocked`` (the own blocked product), ``elementwise``,
``linear``, ``losses``, ``updates``, ``network`` (layer by layer), ``narrow_pair`` (one
narrow ReLU layer, stored units x samples), ``epoch`` (epochs of steps in one call) and
``intrinsics`` (what loops cannot say).
Importing compiles nothing; each kernel compiles on first use and is cached on disk.

The first compile of a kernel in a process logs one WARNING (``CompileNotice``).

Only ``matmul_blocked`` runs threads (``prange``): in a training step, threaded element-wise
kernels contend with OpenBLAS's threads (docs/performance.md).
"""
import logging
import sys

import numba
import numpy as np
from numba.core import event, types

from fastmlp.backends.compose import choose_epoch, choose_network, narrow_argument
from fastmlp.backends.numba.blocked import matmul_blocked
from fastmlp.backends.numba.elementwise import (activation_backward, activation_forward,
                                                dropout_apply, penalty)
from fastmlp.backends.numba.epoch import layered_train_epoch, narrow_pair_train_epoch
from fastmlp.backends.numba.gemm import matmul, matmul_blas, matmul_path
from fastmlp.backends.numba.intrinsics import CompiledOnly
from fastmlp.backends.numba.linear import linear_backward, linear_forward
from fastmlp.backends.numba.losses import (l1_loss, mse_loss, output_loss, sigmoid_cross_entropy,
                                           softmax_cross_entropy)
from fastmlp.backends.numba.narrow_pair import narrow_pair_loss_and_grads, narrow_pair_train_step
from fastmlp.backends.numba.network import (layered_loss_and_grads, layered_train_step,
                                            network_forward)
from fastmlp.backends.numba.updates import (adagrad_update, adam_update, rmsprop_update,
                                            sgd_update)
from fastmlp.backends.tuning import (GEMM_PATHS, dense_products, gemm_path, narrow_loops,
                                     narrow_selection)

# The layered kernels compile no narrow loop for a network none of whose products takes one
# (``narrow`` None): most of a first step's compile time (README, first use).
step_kernel, network_loss_and_grads, network_train_step = choose_network(
    sys.modules[__name__], narrow_loops)
epoch_kernel, network_train_epoch = choose_epoch(sys.modules[__name__], narrow_loops)


def forward_kernel(X, layers, spec):
    """The contract's hook: ``network_forward`` with its ``narrow`` argument for this
    batch, as the training kernels get theirs (``compose.narrow_argument``)."""
    return network_forward, narrow_argument(narrow_loops, X.shape[0], layers, training=False)


#: The products (``tuning.dense_products``) of the contract's layer kernels; dX if given.
LAYER_PRODUCTS = {"linear_forward": ("XW",), "linear_backward": ("dW", "dX")}


def kernel_extra(name, args):
    """The contract's hook: the product kernels' ``narrow``, the narrow loops these shapes
    take (``tuning.narrow_selection``), None where they take none: a first ``matmul`` or
    ``linear_forward`` on a wide shape then compiles the BLAS and i-k-j paths alone (4 s of
    its 5, README, first use), one on a narrow shape its own loop alone."""
    if name == "matmul":
        A, B = args[0], args[1]
        path = gemm_path(A.shape[0], A.shape[1], B.shape[1], not A.flags.c_contiguous,
                         not B.flags.c_contiguous)
        products = [(GEMM_PATHS[path], A.shape[1], not A.flags.c_contiguous)]
    elif name in LAYER_PRODUCTS:
        X, W = args[0], args[1]
        layer = dense_products(X.shape[0], W.shape[0], W.shape[1])
        products = [layer[p] for p in LAYER_PRODUCTS[name] if p != "dX" or args[5] is not None]
    else:
        return ()
    return (narrow_selection(products),)


def specialise(kernel, args, literals=()):
    """``kernel`` compiled for the types of ``args`` and of ``literals``, the trailing
    arguments it takes from a hook: the values of the integers among them (which it asks
    ``literally`` for), the types of the others (``narrow``: True or None), called without
    Numba's per-call type dispatch (a sixth of a small network's step). Only for a caller whose
    arguments keep exactly these types and values (the model's step binds its arrays once).
    Remembered per kernel and argument kinds: ``numba.typeof`` of an epoch kernel's 20
    arguments took ~170 us of every ``fit`` call."""
    if not hasattr(kernel, "compile"):  # NUMBA_DISABLE_JIT: a plain Python function
        return kernel
    if isinstance(kernel, CompiledOnly):  # its own entry points have no wrapper for Python
        kernel = kernel.python_twin()
    key = (kernel, tuple(map(_type_key, args)), literals)
    found = _SPECIALISED.get(key)
    if found is None:
        found = _SPECIALISED[key] = kernel.compile(
            tuple(numba.typeof(a) for a in args)
            + tuple(numba.types.literal(v) if type(v) is int else numba.typeof(v)
                    for v in literals))
    return found


_SPECIALISED = {}


def _type_key(value):
    """What ``numba.typeof`` reads of ``value``, cheaply for a plain ndarray: its dtype,
    dimensions, layout, write flag and alignment."""
    if type(value) is np.ndarray:
        flags = value.flags
        return (value.dtype, value.ndim, flags.c_contiguous, flags.f_contiguous,
                flags.writeable, flags.aligned)
    return numba.typeof(value)


# One log line, once per process, when Numba starts compiling a fastmlp kernel: a first
# step can wait many seconds on the compiler, and a cache miss is the moment to say so.
LOGGER = logging.getLogger("fastmlp")


class CompileNotice(event.Listener):
    """Logs the first compile of a kernel (a module-level dispatcher) of ``package``, then
    stays quiet; Numba's own helpers compiled for it (overload bodies) do not count.
    At WARNING, the level Python prints when logging is not configured (``lastResort``):
    a silent wait of many seconds looks like a hang. ``logging.getLogger("fastmlp")
    .setLevel(logging.ERROR)`` silences it."""

    def __init__(self, package="fastmlp."):
        self.package, self.said = package, False

    def on_start(self, ev):
        dispatcher = ev.data["dispatcher"]
        # Every compile in the process comes here: a user's function made by exec() has
        # no module (None), and a listener that raises breaks the user's own compile.
        module = getattr(dispatcher.py_func, "__module__", None) or ""
        name = dispatcher.py_func.__name__
        if self.said or not module.startswith(self.package) \
                or getattr(sys.modules.get(module), name, None) is not dispatcher:
            return
        self.said = True
        arrays = [a for a in ev.data["args"] if isinstance(a, types.Array)]
        where = dispatcher._cache.cache_path
        LOGGER.warning("compiling numba kernels for %s (first use: this takes a while); %s",
                       arrays[0].dtype if arrays else "scalars",
                       f"they are cached in {where} afterwards" if where else
                       "they are not cached (FASTMLP_FASTMATH=1 or another machine kind)")

    def on_end(self, ev):
        pass


NOTICE = CompileNotice()
event.register("numba:compile", NOTICE)
