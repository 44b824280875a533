"""Thread settings: how long idle thread pools spin before they sleep.

Three pools share the cores of a fastmlp program: OpenMP's (libgomp: ``matmul_blocked`` in
both compiled backends), NumPy's OpenBLAS and SciPy's OpenBLAS (a second copy, which the
compiled backends' BLAS calls use). By default each keeps its idle threads spinning after
its last call (libgomp for ~300k pauses, OpenBLAS for 2^28 cycles, ~0.1 s), and a kernel
called right after another pool's call shares its cores with those spinners (issue 12:
each side kept 42-62% of its speed alone; bench/back_to_back.py, docs/performance.md).
Each runtime reads its setting once, when it loads, so ``fastmlp`` sets them before it
imports NumPy: ``apply_defaults`` sets each of ``DEFAULTS`` unless the user set that knob
(``SAME_KNOB``). A program that imports NumPy before fastmlp keeps NumPy's OpenBLAS
spinning; set the variables in its environment instead. ``FASTMLP_THREAD_DEFAULTS=0`` sets
nothing. Standard library only at import.
"""
import logging
import os
import sys

#: Environment variable -> the value fastmlp sets when the user has set none of the
#: variables it is listed with in ``SAME_KNOB``. The defaults spin ~15 ms (libgomp) and
#: 2^28 cycles, ~0.1 s (OpenBLAS); NumPy's OpenBLAS 0.3.31 still burnt 1.7 ms of CPU after
#: a call at 2^18 cycles, and 0.05 ms at 2^4 (docs/performance.md).
DEFAULTS = {
    # libgomp: ~0.1 ms of pauses, which bridge the gaps between one call's parallel regions
    "GOMP_SPINCOUNT": "2000",
    "OPENBLAS_THREAD_TIMEOUT": "4",  # OpenBLAS (both copies): 2^4 cycles, then it sleeps
}
#: The user's setting of any of these is theirs to make: fastmlp then sets nothing of it.
SAME_KNOB = {"GOMP_SPINCOUNT": ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"),
             "OPENBLAS_THREAD_TIMEOUT": ("OPENBLAS_THREAD_TIMEOUT",)}
#: Set to ``0`` to keep every runtime's own default.
SWITCH = "FASTMLP_THREAD_DEFAULTS"


def apply_defaults(environ=os.environ):
    """Set each of ``DEFAULTS`` not already in ``environ``; return the names set."""
    if environ.get(SWITCH) == "0":
        return []
    chosen = [name for name in DEFAULTS if not any(n in environ for n in SAME_KNOB[name])]
    for name in chosen:
        environ[name] = DEFAULTS[name]
    return chosen


#: The names this process's import of fastmlp set (the others were the user's, or off).
SET_BY_FASTMLP = apply_defaults()
#: Whether NumPy was loaded before fastmlp: its OpenBLAS read the environment without them.
NUMPY_FIRST = "numpy" in sys.modules
if NUMPY_FIRST and "OPENBLAS_THREAD_TIMEOUT" in SET_BY_FASTMLP:
    logging.getLogger("fastmlp").info(
        "numpy was imported before fastmlp: its OpenBLAS threads keep spinning after each "
        "call, slowing threaded kernels called right after; import fastmlp first, or set "
        "OPENBLAS_THREAD_TIMEOUT=4 in the environment (docs/performance.md)")


def _at_most_default(environ, name):
    try:
        return int(environ[name]) <= int(DEFAULTS[name])
    except (KeyError, ValueError):
        return False


def pools_sleep_at_once(environ=os.environ, numpy_first=NUMPY_FIRST):
    """Whether every pool's idle threads sleep within about ``DEFAULTS``' spin (~0.1 ms):
    libgomp passive or at most fastmlp's GOMP_SPINCOUNT, OpenBLAS at most its timeout, in
    force for NumPy's OpenBLAS too (not so when NumPy loaded before fastmlp set it). The
    harness then pauses only briefly before a threaded turn (``timing.settle_seconds``)."""
    gomp = _at_most_default(environ, "GOMP_SPINCOUNT") or (
        "GOMP_SPINCOUNT" not in environ and environ.get("OMP_WAIT_POLICY", "").lower() == "passive")
    numpy_missed_it = numpy_first and "OPENBLAS_THREAD_TIMEOUT" in SET_BY_FASTMLP
    return gomp and _at_most_default(environ, "OPENBLAS_THREAD_TIMEOUT") and not numpy_missed_it


def settings():
    """Each thread variable fastmlp knows: (name, value or None, who set it)."""
    names = dict.fromkeys(n for knob in SAME_KNOB.values() for n in knob)
    return [(name, os.environ.get(name), "fastmlp" if name in SET_BY_FASTMLP else
             ("user" if name in os.environ else "unset")) for name in names]


def describe_lines():
    """Lines naming the thread pools loaded in this process and the settings in force."""
    from threadpoolctl import threadpool_info

    lines = [f"setting: {name}={value} ({who})" for name, value, who in settings()]
    for info in threadpool_info():
        lines.append("pool: " + ", ".join(f"{key}={info.get(key)}" for key in (
            "user_api", "internal_api", "num_threads", "version", "filepath")))
    try:
        import numba

        lines.append(f"numba threading layer: {numba.threading_layer()} "
                     f"(config {numba.config.THREADING_LAYER})")
    except (ImportError, ValueError) as error:  # ValueError: no parallel kernel ran yet
        lines.append(f"numba threading layer: ({error})")
    return lines
