"""One timing process of the regression gate: every case of one tree, as JSON.

Run as a script, ``python path/to/worker.py OUT [options]``, with the tree under
test first on ``PYTHONPATH``: the cases and the code they time are that tree's
(``fastmlp.harness.workloads``, ``fastmlp.backends``), while the stopwatch is
``timing.py`` next to this file, loaded by path, so both sides of a comparison
are timed by the same code even when one of them is an old commit. With
``--serve`` it builds every case, prints their ids, then times one turn of the
case named on each line of stdin (the parent alternates two such processes)
until ``done``. Writes ``{"cases": {"<key>@<backend>": {"samples", "median_s",
"min_s", "inner", "alloc_b", "kept_b"}}, "skipped": {...}, "peak_rss_b",
"fastmlp_file"}`` to OUT.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Backends whose calls are slow; the gate times their cases only when a call takes at
#: most ``SLOW_LIMIT_S`` (longer ones would take most of a gate's minutes).
SLOW_BACKENDS, SLOW_LIMIT_S = ("python",), 0.05
MEMORY_CALLS = 3
#: Multiples of the budget by case group: the training steps, what the gate is mostly for,
#: get more rounds per process, so their per-process fastest round is steadier under load.
WEIGHTS = {"step": 2}


def _load(name):
    """The gate's own harness module ``name`` (never the tree under test's)."""
    spec = importlib.util.spec_from_file_location(f"_fastmlp_gate_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def allocations(fn, calls=MEMORY_CALLS):
    """``(peak, kept)``: bytes a steady-state call of ``fn`` allocates at its peak, and
    still holds after it returns (tracemalloc; the smallest over ``calls`` calls, so a
    garbage collection or a cache filled once is not counted as steady state)."""
    tracemalloc.start()
    try:
        fn()
        peaks, kept = [], []
        for _ in range(calls):
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            fn()
            now, peak = tracemalloc.get_traced_memory()
            peaks.append(peak - before)
            kept.append(now - before)
    finally:
        tracemalloc.stop()
    return min(peaks), min(kept)


def selected(case_id, patterns):
    return not patterns or any(p in case_id for p in patterns)


#: Turns each case is timed in: its rounds are spread over the whole process, so a burst
#: of the machine's other work slows one turn of a case, not all its rounds.
TURNS = 5
#: Prefix of the lines a serving worker answers with (the tree's code may print too).
TAG = "@fastmlp-gate "


def _entry(timer):
    result = timer.result()
    return dict(samples=timer.samples, median_s=result["median_s"], min_s=result["min_s"],
                inner=timer.inner, first_call_s=timer.first)


def start(timing, quick, budget, only=None, patterns=()):
    """``(document, {case id: (fn, Timer)})``: every selected case on every available
    backend, built and called once (the calibration case is always in)."""
    import fastmlp
    from fastmlp import backends
    from fastmlp.harness import workloads

    wanted = None if only is None else {*only, "numpy"}  # numpy: the reference of every ratio
    status = backends.available()
    names = [n for n, (ok, _) in status.items() if ok and (wanted is None or n in wanted)]
    out = dict(cases={}, skipped={}, fastmlp_file=fastmlp.__file__,
               unavailable={n: reason for n, (ok, reason) in status.items() if not ok})
    started = {}
    for case in workloads.suite(quick):
        for name in names:
            case_id = f"{case.key}@{name}"
            if not (case.name == "calibration" or selected(case_id, patterns)) \
                    or not case.applies(name):
                continue
            slow = name in SLOW_BACKENDS
            share = budget * (1 if slow else WEIGHTS.get(case.group, 1))
            try:
                fn = case.build(name)
                started[case_id] = fn, timing.Timer(fn, share, 3 if slow else 5,
                                                    SLOW_LIMIT_S if slow else None)
            except timing.TooSlow as error:
                out["skipped"][case_id] = f"too slow: {error}"
            except Exception as error:  # a broken kernel is a reported case, not a lost run
                out["skipped"][case_id] = f"{type(error).__name__}: {error}"
    return out, started


def turn(timer):
    """One of a timer's ``TURNS`` turns: rounds until it has spent its share of the budget."""
    goal = timer.spent + timer.budget / TURNS
    while timer.wants_more():
        timer.round()
        if timer.spent >= goal:
            return


def serve(started, lines=sys.stdin, say=print):
    """Time turns as the parent asks, one case id a line, until ``done``: the parent
    alternates two workers case by case, so both sides of a case see the same moment."""
    say(TAG + json.dumps(list(started)), flush=True)
    for line in lines:
        case_id = line.strip()
        if case_id == "done":
            return
        turn(started[case_id][1])
        say(TAG + "ok", flush=True)


def finish(out, started, memory=True):
    """``out`` with every case's timings and (``memory``) allocations: not the naive
    backend's, whose every operation makes Python floats, ten times slower under tracemalloc."""
    for case_id, (fn, timer) in started.items():
        out["cases"][case_id] = _entry(timer)
        if memory and case_id.rsplit("@", 1)[1] not in SLOW_BACKENDS:
            out["cases"][case_id]["alloc_b"], out["cases"][case_id]["kept_b"] = allocations(fn)
    out["peak_rss_b"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--budget", type=float, default=0.05)
    p.add_argument("--backends", default=None)
    p.add_argument("--case", action="append", default=[])
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--serve", action="store_true", help="time turns as stdin asks")
    args = p.parse_args(argv)
    if sys.path and Path(sys.path[0]).resolve() == HERE:
        del sys.path[0]  # the script's folder: its modules must not shadow the tree's
    timing = _load("timing")
    only = args.backends.split(",") if args.backends else None
    out, started = start(timing, args.quick, args.budget, only, args.case)
    if args.serve:
        serve(started)
    else:
        for _ in range(TURNS):
            for _, timer in started.values():
                turn(timer)
    result = finish(out, started, not args.no_memory)
    Path(args.out).write_text(json.dumps(result))  # the parent's temporary folder


if __name__ == "__main__":
    main()
