"""fastmlp: how fast can an MLP train in Python?

One MLP interface (``MLP``, ``optim``, ``datasets``) over interchangeable
backends (``backends.available()``): pure Python, NumPy, Numba and Cython.
"""
# First: the thread settings must be in the environment before NumPy loads OpenBLAS.
from fastmlp import threads  # noqa: I001
from fastmlp import backends, datasets, optim
from fastmlp.history import History
from fastmlp.model import MLP, DivergenceError

__all__ = ["MLP", "History", "DivergenceError", "backends", "datasets", "optim"]
__version__ = "0.1.0"
