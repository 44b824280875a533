"""The Cython backend: kernels compiled from ``_cython_kernels.pyx`` by ``setup.py``.

See ``fastmlp.backends.contract`` for the kernels. This module only imports the
extension, so that a checkout without a build reports the backend unavailable
with the command that builds it, instead of failing elsewhere.
"""
try:
    from fastmlp.backends import _cython_kernels as _kernels
except ImportError as error:
    raise ImportError(f"the Cython extension is not built ({error}); build it with "
                      "`pip install -e .` (or `python setup.py build_ext --inplace`)") from error

from fastmlp.backends.contract import KERNEL_NAMES

globals().update({name: getattr(_kernels, name) for name in KERNEL_NAMES})
matmul_blas = _kernels.matmul_blas
matmul_blocked = _kernels.matmul_blocked
