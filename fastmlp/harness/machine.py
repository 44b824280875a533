"""The machine a report was made on: CPU, cores, BLAS, library versions."""
from __future__ import annotations

import os
import platform
import sys
from importlib import import_module, metadata

import numpy as np

from fastmlp.backends import contract, layout, tuning
from fastmlp.threads import SAME_KNOB, SWITCH
from fastmlp.harness.workloads import NETWORKS


#: The thread variables fastmlp sets or leaves to the user (fastmlp.threads).
THREAD_KNOBS = tuple(dict.fromkeys(n for names in SAME_KNOB.values() for n in names)) + (SWITCH,)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas():
    """BLAS libraries NumPy (and SciPy) loaded, with their threads, via threadpoolctl."""
    try:
        import_module("numpy")  # loads its BLAS, so that threadpoolctl can see it
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{k: info.get(k) for k in ("internal_api", "version", "num_threads",
                                       "threading_layer", "architecture")}
            for info in threadpool_info()]


def built_with_cython():
    """The Cython version that built the extension (recorded by setup.py), or None."""
    try:
        return import_module("fastmlp.backends.cython._kernels").CYTHON_VERSION
    except (ImportError, AttributeError):  # no build, or one from before it was recorded
        return None


def versions():
    """Library versions; Cython's is the one that built the extension (a build
    requirement only, it need not be installed where the report runs)."""
    out = {"python": sys.version.split()[0]}
    for name in ("fastmlp", "numpy", "numba", "cython", "scipy", "pandas", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            module = sys.modules.get(name)
            out[name] = getattr(module, "__version__", "not installed") + (
                " (source tree)" if module else "")
    built = built_with_cython()
    if built is not None:
        out["cython"] = f"{built} (built the extension)"
    return out


#: ``step_kernels``' word for a step that runs each layer's products.
LAYERED = "layer by layer"


def product_paths():
    """The machine kind, the product thresholds, the kernels each step workload runs
    (``step_kernels``: the narrow pair's or layer by layer) and the paths of its layers'
    products (the Numba backend's; the Cython build's kind is the building machine's)."""
    return dict(tuning.describe(),
                steps={name: tuning.layer_paths(sizes, batch)
                       for name, (sizes, batch, *_) in NETWORKS.items()},
                step_kernels={name: step_kernels(sizes, batch, output)
                              for name, (sizes, batch, _, output) in NETWORKS.items()})


def step_kernels(sizes, batch, output):
    """What a training step of this ReLU network (cross-entropy on ``output``) runs."""
    out = contract.ACTIVATIONS.index(output)
    spec = np.array([contract.RELU, out, contract.LOSSES.index("cross_entropy")])
    pair = tuning.narrow_pair(batch, layout.plan(sizes, batch).layers, spec)
    return f"the narrow pair of {pair[0]} inputs and {pair[1]} classes" if pair else LAYERED


def load():
    """The 1-minute load average (other work on the machine skews every timing)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def info():
    return dict(cpu=cpu_model(), cores=os.cpu_count(), platform=platform.platform(),
                load_at_start=load(),
                blas=blas(), versions=versions(), product_paths=product_paths(),
                env={k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                 "NUMBA_NUM_THREADS", "MKL_NUM_THREADS",
                                                 *THREAD_KNOBS) if k in os.environ})
