"""The contract's declarations of a kernel's arrays, and the one checker of every call.

``ArraySpec.parse`` reads the ``@kernel`` shape notation of ``fastmlp.backends.contract``;
``KernelSpec.checked`` wraps a backend's kernel so that its arguments are validated (and
missing outputs allocated) before compiled code is entered.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class ArraySpec:
    name: str
    dims: tuple
    written: bool = False
    optional: bool = False
    dtype: np.dtype | None = None  # None: the call's float dtype

    @classmethod
    def parse(cls, name, text):
        text, _, dtype = text.partition(":")
        flags = set(text) & {"!", "?"}
        dims = tuple(d.strip() for d in text.strip("!?").split(",") if d.strip())
        dims = tuple(int(d) if d.isdigit() else d for d in dims)
        return cls(name, dims, "!" in flags, "?" in flags,
                   np.dtype(dtype) if dtype else None)


@dataclass
class KernelSpec:
    """A kernel's declared arrays and codes, and its documented stub."""

    stub: callable
    arrays: dict
    codes: dict = field(default_factory=dict)
    check_extra: callable = None

    @property
    def name(self):
        return self.stub.__name__

    @functools.cached_property
    def params(self):  # cached: inspect.signature took 0.1 ms of every fit call's set-up
        return tuple(inspect.signature(self.stub).parameters)

    def check(self, args):
        """Validate ``args`` (a dict: parameter name -> value) in place.

        Input arrays that are not C-contiguous are replaced by contiguous
        copies; written arrays must already be C-contiguous and writeable.
        """
        sizes, float_dtype = {}, None
        for name, spec in self.arrays.items():
            value = args[name]
            if value is None and spec.optional:
                continue
            float_dtype = _check_array(self.name, spec, value, sizes, float_dtype)
            if not spec.written:
                args[name] = np.ascontiguousarray(value)
        for name, table in self.codes.items():
            code = args[name]
            if not isinstance(code, (int, np.integer)) or not 0 <= code < len(table):
                raise ValueError(f"{self.name}: {name} must be a code 0..{len(table) - 1} "
                                 f"for {table}, got {code!r}")
        if self.check_extra is not None:
            self.check_extra(args)

    def checked(self, raw, extra=None):
        """Wrap the backend kernel ``raw``: validate, allocate missing outputs, call (with the
        trailing arguments ``extra(name, args)`` gives, if given: hook ``kernel_extra``)."""

        @functools.wraps(self.stub)
        def wrapper(*args, **kwargs):
            bound = inspect.signature(self.stub).bind_partial(*args, **kwargs)
            values = {name: bound.arguments.get(name) for name in self.params}
            self._allocate_outputs(values)
            self.check(values)
            args = tuple(values.values())
            result = raw(*args, *(extra(self.name, args) if extra is not None else ()))
            if result is not None:
                return result
            outs = [values[n] for n, s in self.arrays.items() if s.written]
            return outs[0] if len(outs) == 1 else tuple(outs)

        wrapper.__wrapped_kernel__ = raw
        return wrapper

    def _allocate_outputs(self, values):
        """Allocate written arrays left as None, from the shapes of the inputs."""
        sizes, dtype = {}, None
        for name, spec in self.arrays.items():
            value = values[name]
            if isinstance(value, np.ndarray) and value.ndim == len(spec.dims):
                sizes.update((d, n) for d, n in zip(spec.dims, value.shape) if isinstance(d, str))
                if spec.dtype is None and dtype is None:
                    dtype = value.dtype
        for name, spec in self.arrays.items():
            if values[name] is None and spec.written and not spec.optional:
                if not all(isinstance(d, int) or d in sizes for d in spec.dims):
                    raise TypeError(f"{self.name}: pass {name}; its shape cannot be inferred")
                shape = tuple(d if isinstance(d, int) else sizes[d] for d in spec.dims)
                values[name] = np.zeros(shape, spec.dtype or dtype)


def _check_array(kernel, spec, value, sizes, float_dtype):
    where = f"{kernel}: {spec.name}"
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{where} must be a numpy.ndarray, got {type(value).__name__}")
    if value.ndim != len(spec.dims):
        raise ValueError(f"{where} must be {len(spec.dims)}-D with shape "
                         f"({', '.join(map(str, spec.dims))}), got shape {value.shape}")
    if spec.dtype is not None:
        if value.dtype != spec.dtype:
            raise TypeError(f"{where} must have dtype {spec.dtype}, got {value.dtype}")
    elif float_dtype is None:
        if value.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{where} must have dtype float32 or float64, got {value.dtype}")
        float_dtype = value.dtype
    elif value.dtype != float_dtype:
        raise TypeError(f"{where} must have dtype {float_dtype} like the arrays before it, "
                        f"got {value.dtype}")
    if value.size == 0:
        raise ValueError(f"{where} must not be empty, got shape {value.shape}")
    for dim, size in zip(spec.dims, value.shape):
        expected = dim if isinstance(dim, int) else sizes.setdefault(dim, size)
        if size != expected:
            raise ValueError(f"{where} has shape {value.shape}: dimension '{dim}' must be "
                             f"{expected} to match the other arrays")
    if spec.written and not value.flags.c_contiguous:
        raise ValueError(f"{where} is written by the kernel and must be C-contiguous")
    if spec.written and not value.flags.writeable:
        raise ValueError(f"{where} is written by the kernel and must be writeable")
    return float_dtype
