"""The Numba backend: every contract kernel compiled with ``@njit(cache=True)``.

Kernels follow ``fastmlp.backends.contract`` (see there for shapes and loops), and pick
their paths by ``fastmlp.backends.tuning``. The modules mirror the Cython backend's, name
for name: ``gemm`` (products), ``blocked`` (the own blocked product), ``elementwise``,
``linear``, ``losses``, ``updates``, ``network`` (layer by layer), ``narrow_pair`` (one
narrow ReLU layer, stored units x samples) and ``intrinsics`` (what loops cannot say).
Importing compiles nothing; each kernel compiles on first use and is cached on disk.

Only ``matmul_blocked`` runs threads (``prange``): in a training step, threaded element-wise
kernels contend with OpenBLAS's threads (docs/performance.md).
"""
import sys

import numba

from fastmlp.backends.compose import choose_network
from fastmlp.backends.numba import compiling  # noqa: F401 (logs the first compile)
from fastmlp.backends.numba.blocked import matmul_blocked
from fastmlp.backends.numba.elementwise import (activation_backward, activation_forward,
                                                dropout_apply, penalty)
from fastmlp.backends.numba.gemm import matmul, matmul_blas, matmul_path
from fastmlp.backends.numba.linear import linear_backward, linear_forward
from fastmlp.backends.numba.losses import (l1_loss, mse_loss, output_loss, sigmoid_cross_entropy,
                                           softmax_cross_entropy)
from fastmlp.backends.numba.narrow_pair import narrow_pair_loss_and_grads, narrow_pair_train_step
from fastmlp.backends.numba.network import (layered_loss_and_grads, layered_train_step,
                                            network_forward)
from fastmlp.backends.numba.updates import (adagrad_update, adam_update, rmsprop_update,
                                            sgd_update)

step_kernel, network_loss_and_grads, network_train_step = choose_network(sys.modules[__name__])


def specialise(kernel, args, literals=()):
    """``kernel`` compiled for the types of ``args`` and the values of ``literals`` (the
    trailing integer arguments it asks ``literally`` for), called without Numba's per-call
    type dispatch (a sixth of a small network's step). Only for a caller whose
    arguments keep exactly these types and values (the model's step binds its arrays once)."""
    if not hasattr(kernel, "compile"):  # NUMBA_DISABLE_JIT: a plain Python function
        return kernel
    return kernel.compile(tuple(numba.typeof(a) for a in args)
                          + tuple(numba.types.literal(v) for v in literals))
