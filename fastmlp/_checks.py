"""Validation of user input: clear errors before any kernel runs.

Every message names the argument, what was expected and what came.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastmlp.backends.contract import CROSS_ENTROPY, SOFTMAX


def choice(name, value, table):
    """``table.index(value)``, or ValueError listing the allowed names."""
    if value not in table:
        raise ValueError(f"{name} must be one of {list(table)}, got {value!r}")
    return table.index(value)


def integer(name, value, low, high=None):
    """An int in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def number(name, value, low=0.0, high=math.inf, low_open=False, high_open=True):
    """A float in the interval from ``low`` to ``high`` (open or closed at each end)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high or math.isnan(value):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def float_dtype(value):
    try:
        dtype = None if value is None else np.dtype(value)  # np.dtype(None) is float64
    except TypeError:
        dtype = None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {value!r}")
    return dtype


def _numeric(name, value):
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(f"{name} must be finite, got {array[tuple(bad)]} at index {tuple(bad)}")
    return array


def features(X, n_features, dtype, name="X"):
    """``X`` as a C-contiguous ``(n_samples, n_features)`` array of ``dtype``."""
    X = _numeric(name, X)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{name} must have shape (n_samples, {n_features}), got {X.shape}")
    return np.ascontiguousarray(X, dtype=dtype)


def targets(y, n_samples, n_outputs, output, loss, dtype, name="y"):
    """``y`` as a ``(n_samples, n_outputs)`` target matrix of ``dtype``.

    Cross-entropy with softmax takes class labels 0..K-1 (one-hot encoded here)
    or probability rows; with sigmoid, values in [0, 1]. MSE and L1 take any
    finite numbers. With one output, a 1-D ``y`` is a column.
    """
    y = _numeric(name, y)
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} rows but X has {n_samples}")
    if loss == CROSS_ENTROPY and output == SOFTMAX and y.ndim == 1:
        return _one_hot(y, n_outputs, dtype, name)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        raise ValueError(f"{name} must have shape ({n_samples}, {n_outputs})"
                         f"{' or (n_samples,) labels' if output == SOFTMAX else ''}, got {y.shape}")
    if loss == CROSS_ENTROPY:
        _probabilities(y, name, rows_sum_to_one=output == SOFTMAX)
    return np.ascontiguousarray(y, dtype=dtype)


def _one_hot(labels, n_classes, dtype, name):
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        fraction = labels[labels != np.round(labels)][0]
        raise ValueError(f"{name} class labels must be whole numbers, got {fraction}")
    low, high = labels.min(), labels.max()
    if low < 0 or high >= n_classes:
        bad = labels[(labels < 0) | (labels >= n_classes)][0]
        raise ValueError(f"{name} class labels must be in 0..{n_classes - 1}, got "
                         f"{bad} (min {low}, max {high})")
    return np.eye(n_classes, dtype=dtype).take(labels.astype(np.int64), axis=0)  # C order


def _probabilities(y, name, rows_sum_to_one):
    if (y < 0).any() or (y > 1).any():
        raise ValueError(f"{name} cross-entropy targets must be in [0, 1], got values in "
                         f"[{y.min()}, {y.max()}]")
    if rows_sum_to_one:
        sums = y.sum(axis=1)
        if not np.allclose(sums, 1, atol=1e-6):
            raise ValueError(f"{name} rows must be one-hot or probabilities summing to 1 for "
                             f"softmax cross-entropy; row {np.argmax(~np.isclose(sums, 1))} sums "
                             f"to {sums[np.argmax(~np.isclose(sums, 1))]}")
