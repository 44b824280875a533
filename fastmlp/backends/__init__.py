"""Backend registry: ``backends.get("numba")`` returns the backend's kernels.

Every backend module exports the kernels named in ``contract.KERNELS``. A
backend whose import fails (Numba not installed, Cython extension not built) is
reported by ``available()`` with the reason; the others keep working.

A ``Backend`` offers each kernel twice: ``backend.matmul(A, B, out=None)``
validates its arguments (shapes, dtypes, contiguity), allocates missing outputs
and is safe to call from user code; ``backend.raw.matmul`` is the bare kernel
that the model calls after it has validated and allocated everything itself.
The optional hooks of ``contract.HOOKS`` are attributes of every ``Backend``:
the module's own where it defines them (``backend.own_hooks``), else defaults.
"""
from __future__ import annotations

import functools
import importlib
import inspect

from fastmlp.backends import contract

#: Backend name -> module, in order from the slowest to the fastest expected.
MODULES = {
    "python": "fastmlp.backends.python_backend",
    "numpy": "fastmlp.backends.numpy_backend",
    "numba": "fastmlp.backends.numba",
    "cython": "fastmlp.backends.cython",
}

_loaded: dict[str, Backend] = {}
_failed: dict[str, str] = {}


class Backend:
    """A backend's kernels: checked public wrappers, and ``raw`` for the model."""

    def __init__(self, name, module):
        self.name, self.raw = name, module
        self.own_hooks = frozenset(h for h in contract.HOOKS if hasattr(module, h))
        extra = module.kernel_extra if "kernel_extra" in self.own_hooks else None
        for kernel_name, spec in contract.KERNELS.items():
            setattr(self, kernel_name, spec.checked(getattr(module, kernel_name), extra))
        for hook in contract.HOOKS:
            raw = hook_of(module, hook)
            if hook in contract.CHECKED_HOOKS:
                raw = contract.KERNELS[contract.CHECKED_HOOKS[hook]].checked(raw)
            setattr(self, hook, raw)

    def __repr__(self):
        return f"<fastmlp backend {self.name!r}>"


def hook_of(module, hook):
    """The hook ``hook`` (``contract.HOOKS``) of a backend module: its own, else the
    contract's default bound to it."""
    if hasattr(module, hook):
        return getattr(module, hook)
    return functools.partial(contract.HOOKS[hook], module)


def _contract_problems(module):
    """Kernels the module lacks, or whose parameter names differ from the contract (a
    kernel may add trailing parameters with defaults: compile-time choices of its own)."""
    problems = []
    for name, spec in contract.KERNELS.items():
        func = getattr(module, name, None)
        if func is None:
            problems.append(f"missing kernel {name}")
            continue
        func = getattr(func, "py_func", func)  # a Numba dispatcher's Python function
        try:
            parameters = inspect.signature(func).parameters
        except (TypeError, ValueError):
            continue  # a compiled function without introspectable parameters
        params, own = tuple(parameters)[:len(spec.params)], tuple(parameters)[len(spec.params):]
        if params != spec.params or any(parameters[p].default is inspect.Parameter.empty
                                        for p in own):
            problems.append(f"{name}{tuple(parameters)} differs from the contract "
                            f"{name}{spec.params}")
    return problems


def get(name) -> Backend:
    """The backend called ``name``; ValueError if unknown, ImportError if unavailable."""
    if name in _loaded:
        return _loaded[name]
    if name not in MODULES:
        raise ValueError(f"backend must be one of {sorted(MODULES)}, got {name!r}")
    if name not in _failed:
        try:
            module = importlib.import_module(MODULES[name])
            problems = _contract_problems(module)
            if problems:
                raise ImportError("; ".join(problems))
            _loaded[name] = Backend(name, module)
            return _loaded[name]
        except ImportError as error:
            _failed[name] = str(error) or type(error).__name__
    raise ImportError(f"backend {name!r} is unavailable: {_failed[name]}")


def available() -> dict[str, tuple[bool, str]]:
    """``{name: (True, "")}`` for usable backends, ``(False, reason)`` for the others."""
    status = {}
    for name in MODULES:
        try:
            get(name)
            status[name] = (True, "")
        except ImportError:
            status[name] = (False, _failed[name])
    return status


def names(only_available=True) -> list[str]:
    """Backend names, by default only those that import."""
    return [n for n, (ok, _) in available().items() if ok or not only_available]
