"""Shared fixtures: every test that takes ``backend`` runs once per registered backend.

A backend that does not import fails its tests with the reason (a missing
backend is a missing feature, not a skip). For local work on a partial build,
``FASTMLP_ALLOW_MISSING_BACKENDS=1`` turns those failures into skips.
"""
import os

import numpy as np
import pytest

from fastmlp import backends

ALL_BACKENDS = list(backends.MODULES)
COMPILED = [name for name in ALL_BACKENDS if name in ("numba", "cython")]


def require(name):
    """The backend, or a failure (skip when missing backends are allowed) with the reason."""
    ok, reason = backends.available()[name]
    if not ok:
        message = f"backend {name!r} unavailable: {reason}"
        if os.environ.get("FASTMLP_ALLOW_MISSING_BACKENDS") == "1":
            pytest.skip(message)
        pytest.fail(message)
    return backends.get(name)


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    return require(request.param)


@pytest.fixture(params=COMPILED)
def compiled_backend(request):
    return require(request.param)


@pytest.fixture
def reference():
    return backends.get("numpy")


@pytest.fixture(params=["float64", "float32"])
def dtype(request):
    return np.dtype(request.param)


def tolerance(dtype):
    """Agreement required between a backend and the NumPy reference."""
    return {"rtol": 1e-10, "atol": 1e-12} if dtype == np.float64 else {"rtol": 1e-4, "atol": 1e-6}
