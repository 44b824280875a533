"""The Cython backend: kernels compiled from ``_kernels.pyx`` by ``setup.py``.

Kernels follow ``fastmlp.backends.contract`` and pick their paths by
``fastmlp.backends.tuning``. The files mirror the Numba backend's modules, name for name
(``gemm.pxi`` ~ ``numba/gemm.py``...), all compiled as one extension so that GCC inlines
across them; the C they call is in ``intrinsics.h`` and ``narrow_pair.h``. This module
only imports the extension, so that a checkout without a build reports the backend
unavailable with the command that builds it.
"""
import logging
import sys

try:
    from fastmlp.backends.cython import _kernels
except ImportError as error:
    raise ImportError(f"the Cython extension is not built ({error}); build it with "
                      "`pip install -e .` (or `python setup.py build_ext --inplace`)") from error

from fastmlp.backends import tuning
from fastmlp.backends.compose import choose_epoch, choose_network
from fastmlp.backends.contract import KERNEL_NAMES

if _kernels.MACHINE_KIND != tuning.KIND:  # its thresholds are another machine's
    logging.getLogger(__name__).warning(
        "the Cython extension was built for a %s machine and runs on a %s one: its product "
        "paths differ from tuning.gemm_path's; rebuild it here (`pip install -e .`)",
        _kernels.MACHINE_KIND, tuning.KIND)

#: The extension's kernels: the contract's but the three that choose (choose_network,
#: choose_epoch), and the hooks and network kernels those choose between.
COMPILED = tuple(n for n in KERNEL_NAMES if n not in ("network_loss_and_grads",
                                                       "network_train_step",
                                                       "network_train_epoch")) + (
    "matmul_blas", "matmul_path", "matmul_blocked", "layered_loss_and_grads", "layered_train_step",
    "narrow_pair_loss_and_grads", "narrow_pair_train_step", "layered_train_epoch",
    "narrow_pair_train_epoch")
_stale = [name for name in COMPILED if not hasattr(_kernels, name)]
if _stale:
    raise ImportError(f"the Cython extension is out of date (no {', '.join(_stale)}); rebuild "
                      "it with `pip install -e .` (or `python setup.py build_ext --inplace`)")
globals().update({name: getattr(_kernels, name) for name in COMPILED})
step_kernel, network_loss_and_grads, network_train_step = choose_network(sys.modules[__name__])
epoch_kernel, network_train_epoch = choose_epoch(sys.modules[__name__])
