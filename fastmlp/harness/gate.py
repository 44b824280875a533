"""The regression gate: save a baseline of case timings, compare a later run against it.

Each case is stored twice: seconds per call, and normalised by the calibration
case (a fixed NumPy workload timed in the same run). Normalised figures carry
across machines and across a noisy neighbour's load; seconds are exact on one
machine. By default the gate compares the minimum over rounds (noise on a
shared machine only ever adds time, so the minimum is the steadiest figure);
``stat="median"`` compares medians. ``compare`` fails when any case got slower
than ``fail_above``.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from fastmlp.harness import machine, speed, timing, workloads
from fastmlp.harness.store import write_atomic

DEFAULT_DIR = Path(".benchmarks") / "fastmlp"
FORMAT = 2
FIELDS = ("min_s", "median_s", "norm_min", "norm_median")
#: The naive backend's longest call in the gate: its multi-second cases would take most of a
#: gate's minutes, gating a baseline nobody optimises.
SLOW_LIMIT_S = 0.2


class GateError(Exception):
    """A baseline that cannot be used (missing, unreadable, wrong format)."""


def measure(cases=None, quick=True, only=None, budget=None, progress=None, passes=3):
    """Time ``cases`` (default: the quick or full suite) on every available backend.

    The calibration case is timed before and after the others (the unit is the
    faster of the two, so drift during the run does not move every ratio); the
    cases are timed in ``passes`` interleaved passes, keeping each case's
    fastest min and median.
    Returns the baseline document: ``{"format", "created", "machine",
    "calibration_s", "cases": {"<key>@<backend>": {...}}}``.
    """
    cases = [c for c in (cases if cases is not None else workloads.suite(quick))
             if c.name != "calibration"]
    calibration = workloads.calibration_case()
    unit = _calibrate(calibration)
    rows = Rows()
    for _ in range(passes):  # interleaved passes: a slow spell hits one pass of each case
        speed.run_speed(cases, rows, (budget or (0.1 if quick else 0.3)) / passes, progress,
                        only, SLOW_LIMIT_S)
        progress = None  # the bar counts the first pass only
    after = _calibrate(calibration)
    unit = {k: min(unit[k], after[k]) for k in unit}
    out = {f"{calibration.key}@numpy": dict(unit, iqr_s=0.0, norm_min=1.0, norm_median=1.0)}
    for r in rows.best():
        if r["status"] == "ok":
            out[f"{r['key']}@{r['backend']}"] = dict(
                min_s=r["min_s"], median_s=r["median_s"], iqr_s=r["iqr_s"],
                norm_min=r["min_s"] / unit["min_s"],
                norm_median=r["median_s"] / unit["median_s"])
    return dict(format=FORMAT, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                machine=machine.cpu_model(), calibration_s=unit["min_s"], cases=out)


def _calibrate(case):
    try:
        result = timing.measure(case.build("numpy"), budget=0.2, min_rounds=20)
    except ImportError as error:
        raise GateError(f"the calibration case needs the numpy backend: {error}") from None
    return dict(min_s=result["min_s"], median_s=result["median_s"])


class Rows:
    """An in-memory stand-in for ``ResultStore`` (the gate keeps nothing until saved)."""

    def __init__(self):
        self.rows = []

    def done(self, key, backend):
        return False

    def add(self, row):
        self.rows.append(row)

    def best(self):
        """One row per case and backend: the smallest min and median over the passes."""
        best = {}
        for r in self.rows:
            key = (r["key"], r["backend"])
            if key not in best or best[key]["status"] != "ok":
                best[key] = dict(r)
            elif r["status"] == "ok":
                for f in ("min_s", "median_s"):
                    best[key][f] = min(best[key][f], r[f])
        return list(best.values())


def path_for(name, directory=DEFAULT_DIR):
    name = str(name)
    return Path(name) if name.endswith(".json") else Path(directory) / f"{name}.json"


def save(doc, name, directory=DEFAULT_DIR):
    path = path_for(name, directory)
    write_atomic(path, json.dumps(doc, indent=1))
    return path


def load(name, directory=DEFAULT_DIR):
    """The baseline document saved as ``name``; ``GateError`` with the reason otherwise."""
    path = path_for(name, directory)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GateError(f"no baseline {name!r}: {path} does not exist; create it with "
                        f"`fastmlp bench --save {name}`") from None
    except OSError as error:
        raise GateError(f"cannot read baseline {path}: {error}") from None
    try:
        doc = json.loads(text)
    except ValueError as error:
        raise GateError(f"baseline {path} is not valid JSON ({error}); delete it and save a "
                        f"new one with `fastmlp bench --save {name}`") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or \
            not isinstance(doc.get("cases"), dict):
        raise GateError(f"baseline {path} is not a fastmlp baseline (format {FORMAT}); save a "
                        f"new one with `fastmlp bench --save {name}`")
    for key, entry in doc["cases"].items():
        if not isinstance(entry, dict) or not all(
                isinstance(entry.get(f), (int, float)) and entry[f] > 0 for f in FIELDS):
            raise GateError(f"baseline {path}: case {key!r} lacks positive {', '.join(FIELDS)}")
    return doc


def field(metric="normalized", stat="min"):
    """The stored figure a comparison uses: ``norm_min``, ``norm_median``, ``min_s``..."""
    if metric not in ("normalized", "seconds") or stat not in ("min", "median"):
        raise GateError(f"metric must be normalized or seconds and stat min or median, got "
                        f"{metric!r}, {stat!r}")
    return f"norm_{stat}" if metric == "normalized" else f"{stat}_s"


def compare(baseline, current, fail_above=0.15, metric="norm_min"):
    """Cases common to both runs, with their change; ``(ok, rows)``.

    ``change`` is ``current / baseline - 1`` of the stored figure ``metric``
    (one of ``FIELDS``); a case regresses when ``change > fail_above``.
    """
    if metric not in FIELDS:
        raise GateError(f"metric must be one of {FIELDS}, got {metric!r}")
    rows = []
    for key, base in baseline["cases"].items():
        now = current["cases"].get(key)
        if now is None:
            continue
        change = now[metric] / base[metric] - 1
        rows.append(dict(case=key, baseline=base[metric], current=now[metric], change=change,
                         regressed=change > fail_above))
    if not rows:
        raise GateError("the baseline and this run have no case in common; save a new baseline")
    rows.sort(key=lambda r: -r["change"])
    return not any(r["regressed"] for r in rows), rows


def format_rows(rows, metric, fail_above, show="moved", moved_at=0.05):
    """Lines for the terminal: regressions first, then (``show='moved'``) what moved > 5%."""
    unit = "x calibration" if metric.startswith("norm") else "s"
    lines = []
    for r in rows:
        if r["regressed"] or show == "all" or abs(r["change"]) > moved_at:
            flag = "REGRESSION" if r["regressed"] else ("faster" if r["change"] < 0 else "slower")
            lines.append(f"{flag:>10}  {r['change']:+7.1%}  {r['case']}  "
                         f"({r['baseline']:.4g} -> {r['current']:.4g} {unit})")
    n_bad = sum(r["regressed"] for r in rows)
    lines.append(f"{len(rows)} cases compared on {metric}, threshold +{fail_above:.0%}: "
                 f"{n_bad} regression{'s' if n_bad != 1 else ''}")
    return lines
