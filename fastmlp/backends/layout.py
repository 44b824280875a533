"""Where each layer's parameters and buffers live in the flat arrays.

The model keeps all parameters in one flat vector ``theta`` (and gradients in
``grad``), and every per-batch buffer in one flat ``work`` array. The ``layers``
table (one row a layer, columns ``LAYER_COLUMNS``) gives the offsets, so
compiled network kernels take five to eight arguments whatever the depth. The
kernel contract imports this module; it imports nothing of fastmlp.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Columns of the ``layers`` table. W and B are offsets into ``theta``/``grad``; the rest
#: are offsets into ``work`` (-1 where a layer has no such buffer).
LAYER_COLUMNS = ("FAN_IN", "FAN_OUT", "W", "B", "Z", "A", "U", "OUT", "DZ")
FAN_IN, FAN_OUT, W, B, Z, A, U, OUT, DZ = range(9)


class Plan(NamedTuple):
    layers: np.ndarray  # (n_layers, len(LAYER_COLUMNS)) int64
    theta_size: int
    work_size: int


def theta_offsets(sizes):
    """Offsets of each layer's W and b in ``theta``, and its total size."""
    offsets, at = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        offsets.append((at, at + fan_in * fan_out))
        at += fan_in * fan_out + fan_out
    return offsets, at


def plan(sizes, n_samples, dropout=0.0, training=True):
    """Lay out ``work`` for a batch of ``n_samples`` rows.

    Every layer gets ``A`` (its activation output); the output layer also ``Z``
    (pre-activation). When training, every layer gets ``DZ`` (gradient of its
    pre-activation) and, with dropout, hidden layers get ``U`` (uniforms) and a
    separate ``OUT`` (dropped activations); otherwise ``OUT`` is ``A``.
    """
    offsets, theta_size = theta_offsets(sizes)
    n_layers = len(sizes) - 1
    layers = np.full((n_layers, len(LAYER_COLUMNS)), -1, dtype=np.int64)
    at = 0

    def take(count):
        nonlocal at
        at += count
        return at - count

    for l, (w_at, b_at) in enumerate(offsets):
        block = n_samples * sizes[l + 1]
        hidden = l < n_layers - 1
        row = layers[l]
        row[FAN_IN], row[FAN_OUT], row[W], row[B] = sizes[l], sizes[l + 1], w_at, b_at
        if not hidden:
            row[Z] = take(block)
        row[A] = row[OUT] = take(block)
        if training and hidden and dropout > 0:
            row[U], row[OUT] = take(block), take(block)
        if training:
            row[DZ] = take(block)
    return Plan(layers, theta_size, at)


#: Bytes a ``work`` array's start is aligned to: a cache line, which is also AVX-512's
#: vector (rows of whole vectors then start lines, and no vector of theirs splits two).
ALIGNMENT = 64


def aligned_zeros(size, dtype):
    """A zeroed 1-D array of ``size`` items whose data starts at a multiple of ALIGNMENT
    bytes (NumPy's start 16 bytes into a line)."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(size + ALIGNMENT // itemsize, dtype)
    skip = -raw.ctypes.data % ALIGNMENT // itemsize
    return raw[skip:skip + size]


def views(flat, layers, column, n_rows):
    """Per-layer 2-D views ``(n_rows, fan_out)`` of ``flat`` at ``column`` (None where -1)."""
    return [None if row[column] < 0 else
            flat[row[column]:row[column] + n_rows * row[FAN_OUT]].reshape(n_rows, row[FAN_OUT])
            for row in layers]


def param_views(theta, layers):
    """``[W1, b1, W2, b2, ...]`` as views of ``theta``; W has shape (fan_in, fan_out)."""
    out = []
    for row in layers:
        fan_in, fan_out = int(row[FAN_IN]), int(row[FAN_OUT])
        out.append(theta[row[W]:row[W] + fan_in * fan_out].reshape(fan_in, fan_out))
        out.append(theta[row[B]:row[B] + fan_out])
    return out


def check_layers(layers, n_samples, theta_size, work_size, n_features, training):
    """Refuse a ``layers`` table that would index outside ``theta`` or ``work``."""
    required = [A, OUT] + ([DZ] if training else [])
    missing = [(l, c) for l, row in enumerate(layers) for c in required if row[c] < 0]
    if layers[-1, Z] < 0 or missing:
        raise ValueError("layers: a buffer the kernel needs is missing (-1); build the "
                         f"layout with fastmlp.backends.layout.plan(..., training={training})")
    if layers[0, FAN_IN] != n_features:
        raise ValueError(f"layers: the first layer takes {layers[0, FAN_IN]} features, "
                         f"X has {n_features}")
    needed_theta = max(int(r[B] + r[FAN_OUT]) for r in layers)
    if needed_theta != theta_size:
        raise ValueError(f"theta: expected {needed_theta} parameters for this layout, "
                         f"got {theta_size}")
    for l, row in enumerate(layers):
        if l and row[FAN_IN] != layers[l - 1, FAN_OUT]:
            raise ValueError(f"layers: layer {l} takes {row[FAN_IN]} inputs but the layer "
                             f"before it has {layers[l - 1, FAN_OUT]} outputs")
        block = n_samples * int(row[FAN_OUT])
        for column in (Z, A, U, OUT, DZ):
            if row[column] >= 0 and row[column] + block > work_size:
                raise ValueError(f"work: layer {l} needs {row[column] + block} entries for a "
                                 f"batch of {n_samples}, work has {work_size}; build the "
                                 "layout with fastmlp.backends.layout.plan for this batch size")
