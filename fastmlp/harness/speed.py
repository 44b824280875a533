"""Running the speed cases on every backend, with the naive backend only where it is fast enough."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

from fastmlp import backends
from fastmlp.harness import timing, workloads

#: The naive ``python`` backend runs a case only if one call is estimated under this.
PYTHON_LIMIT_S = 2.0
SLOW_BACKENDS = ("python",)
TOO_SLOW = "not run (too slow)"
#: Backends that compile on first use and keep a disk cache (the cold-start table shows both).
JIT_BACKENDS = ("numba",)


def backend_status():
    """``{name: (available, reason)}`` for every registered backend, in registry order."""
    return backends.available()


class SlowBackendGuard:
    """Estimates a slow backend's time per case from its FLOP rate, measured once by a pilot."""

    def __init__(self, limit=PYTHON_LIMIT_S):
        self.limit, self.rates = limit, {}

    def rate(self, backend):
        if backend not in self.rates:
            pilot = workloads.matmul_case(24, 24, 24, "float64")
            t = timing.measure(pilot.build(backend), budget=0.05, min_rounds=3)["median_s"]
            self.rates[backend] = pilot.flops / t
        return self.rates[backend]

    def seconds(self, backend, case):
        """The estimated time of one call of ``case``."""
        return case.flops * case.steps / self.rate(backend)

    def too_slow(self, backend, case):
        return backend in SLOW_BACKENDS and self.seconds(backend, case) > self.limit


def _row(case, backend):
    return dict(key=case.key, group=case.group, name=case.name, size=case.size,
                dtype=case.dtype, x=case.x, flops=case.flops, steps=case.steps, backend=backend)


#: The figures of a timing that are per call in steady state (divided by a call's steps).
PER_STEP = ("median_s", "q1_s", "q3_s", "iqr_s", "min_s")


def per_step(result, steps):
    """``timing.summarize``'s figures of a call running ``steps`` steps, per step (the first
    call stays whole: it is a cost paid once)."""
    return {k: v / steps if k in PER_STEP else v for k, v in result.items()}


def _start(case, backend, guard, budget):
    """``(row, Timer)`` once the first call is done, or ``(finished row, None)``."""
    row, slow = _row(case, backend), backend in SLOW_BACKENDS
    if guard.too_slow(backend, case):
        return dict(row, status=TOO_SLOW, note=f"estimated "
                    f"{guard.seconds(backend, case):.1f} s per call"), None
    try:
        started = time.perf_counter()
        fn = case.build(backend)  # a step binds (for numba: compiles) its kernel here
        row["setup_s"] = time.perf_counter() - started
        return row, timing.Timer(fn, budget / 2 if slow else budget, 3 if slow else 5,
                                 guard.limit if slow else None)
    except timing.TooSlow as error:
        return dict(row, status=TOO_SLOW, note=str(error)), None
    except Exception as error:  # a broken kernel is a reported result, not a crashed report
        return dict(row, status="error", note=f"{type(error).__name__}: {error}"), None


#: Turns of each timer when cases are timed together (``workloads.TIMED_TOGETHER``), rather
#: than ``timing.TURNS`` (3): shorter turns spread each side of a ratio over the whole
#: run. ``fastmlp targets --repeat 5``, 2026-11-26, the MNIST ratio's ranges over five runs:
#: 1.11-1.50 and 1.18-1.28 (numba), 1.09-1.20 and 1.21-1.73 (cython) with 3 turns; 1.13-1.22
#: and 1.15-1.19, 1.12-1.23 and 1.13-1.21 with 8 (every case: the full report then took
#: 5 min 20 s instead of 3 min 37 s, hence only here).
TOGETHER_TURNS = 8


def run_case(case, names, guard, budget):
    """Rows for ``case`` on each backend of ``names``: timings, or why it did not run."""
    return run_cases([(case, names)], guard, budget)


def run_cases(plan, guard, budget):
    """Rows for each ``(case, backend names)`` of ``plan``: timings, or why it did not run.

    The fast backends of every case are timed round by round in turn; a slow
    backend alone (its long calls would stretch the others' rounds).
    """
    started = [_start(case, name, guard, budget) for case, names in plan for name in names]
    together = [timer for row, timer in started
                if timer is not None and row["backend"] not in SLOW_BACKENDS]
    timing.interleave(together, turns=TOGETHER_TURNS if len(plan) > 1 else timing.TURNS)
    for row, timer in started:
        if timer is not None and row["backend"] in SLOW_BACKENDS:
            timing.interleave([timer])
    return [row if timer is None else
            dict(row, status="ok", note="", **per_step(timer.result(), row["steps"]))
            for row, timer in started]


def run_speed(cases, store, budget=0.25, progress=None, only=None, slow_limit=PYTHON_LIMIT_S):
    """Run every case on every available backend (skipping rows the store already has);
    the cases of a ``workloads.TIMED_TOGETHER`` group are timed together.

    ``slow_limit``: the longest estimated call a slow backend may make.
    """
    status = backend_status()
    wanted = None if only is None else {*only, "numpy"}  # numpy: the reference of every ratio
    names = [n for n, (ok, _) in status.items() if ok and (wanted is None or n in wanted)]
    guard = SlowBackendGuard(slow_limit)
    for group in workloads.timed_groups(cases):
        if progress is not None:
            progress.set_postfix_str(group[0].key[-60:], refresh=False)
        plan = [(case, [b for b in names if case.applies(b) and not store.done(case.key, b)])
                for case in group]
        for row in run_cases(plan, guard, budget) if any(todo for _, todo in plan) else []:
            store.add(row)
        if progress is not None:
            progress.update(len(group))
    return status


PRECOMPILE_SCRIPT = """
import json, sys
from fastmlp.harness import workloads
keys = json.loads(sys.argv[2])
for case in workloads.suite():
    if case.applies(sys.argv[1]) and (keys is None or case.key in keys):
        try:
            case.build(sys.argv[1])()
        except Exception:
            pass  # the speed phase meets it again and reports it
"""


@contextlib.contextmanager
def precompiled(names, keys=None, timeout=1200):
    """Within the block (given the child processes), a second process builds and calls
    once every speed case (those of ``keys``, if given) on each JIT backend of ``names``,
    which fills its disk cache; on leaving, waits for it (stopped if the block raises, or
    after ``timeout`` s). Numba compiles on one core: beside the report's untimed sections
    and its cold-start children, the other core does it, and the speed cases then load their
    kernels (bench: a cold digits step beside another compile, 13.7-15.6 s against
    13.7-14.4 s alone)."""
    children = [subprocess.Popen([sys.executable, "-c", PRECOMPILE_SCRIPT, name,
                                  json.dumps(keys)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                for name in names if name in JIT_BACKENDS]
    try:
        yield children
        deadline = time.monotonic() + timeout
        for child in children:  # past the deadline the speed cases compile what is left
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(max(0.0, deadline - time.monotonic()))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


#: The step workloads of the cold-start table (``workloads.NETWORKS``), in both dtypes.
COLD_NETWORKS = ("spiral", "digits", "mnist")

COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
from fastmlp import backends
from fastmlp.harness import workloads, timing
backends.get(sys.argv[1])
t1 = time.perf_counter()
sizes, batch, optimizer, output = workloads.NETWORKS[sys.argv[2]]
case = workloads.step_case("step", sys.argv[2], sizes, batch, sys.argv[3], optimizer, output)
fn = case.build(sys.argv[1])
t2 = time.perf_counter(); fn(); t3 = time.perf_counter(); fn(); t4 = time.perf_counter()
steady = timing.measure(fn, budget=0.1)["median_s"]
print(json.dumps(dict(import_s=t1 - t0, make_step_s=t2 - t1, first_call_s=t3 - t2,
                      second_call_s=t4 - t3, steady_s=steady)))
"""


def cold_start(backend, network="spiral", dtype="float32", fresh_cache=True, timeout=240):
    """First-call time of ``network``'s step (``workloads.NETWORKS``) in ``dtype`` in a fresh
    process (a fresh Numba cache if asked).

    Returns a dict of seconds, or ``{"error": ...}``.
    """
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if fresh_cache:
            env["NUMBA_CACHE_DIR"] = cache
        try:
            done = subprocess.run([sys.executable, "-c", COLD_SCRIPT, backend, network, dtype],
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])
