"""The regression gate's verdicts: two sets of timing processes compared case by case.

A side is a list of timing processes (``worker.py`` documents), each holding
every case's per-round samples. Each process contributes one figure per case
(its median, or minimum, seconds per call; ``normalized``: divided by the
calibration case timed in the same process), and ``stats`` turns the two
sides' figures into a ratio (B over A) with a confidence interval and a
verdict. Memory is compared too: a call that allocates more than before at
its peak, or keeps memory after it returns, is a regression whatever its time.

Baselines (``--save`` / ``--compare``) are the processes of one run, stored
whole (``FORMAT``), so a later run is compared with the same statistics.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fastmlp.harness import machine, stats
from fastmlp.harness.errors import GateError
from fastmlp.harness.store import write_atomic

__all__ = ["GateError", "check_cases", "compare", "document", "load", "save", "lines", "failed"]

DEFAULT_DIR = Path(".benchmarks") / "fastmlp"
FORMAT = 3
CALIBRATION = "reference/calibration/"
#: Peak bytes a call may allocate beyond the other side's before it is a memory regression:
#: the Python objects of one call (tuples, floats, bound methods) come to a few hundred
#: bytes; a new array of even 30 floats is past it.
ALLOC_SLACK_B = 256
#: ... plus this share of it: a fit call's set-up (~300 kB for the spiral) moves by up to
#: 8% with the number of its kernel calls, which follows its first call's time (one epoch
#: a call against all in one); a step allocates 0 and stays exact.
ALLOC_SLACK_SHARE = 0.25
#: Peak-RSS growth beyond the threshold that also counts (imports and caches move it by MBs).
RSS_SLACK_B = 32 * 2 ** 20


def document(processes, quick, commit=None):
    """The baseline document of one run's ``processes``."""
    versions = machine.versions()
    return dict(format=FORMAT, fastmlp=versions.get("fastmlp"), quick=quick, commit=commit,
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                machine=machine.cpu_model(), processes=processes)


def path_for(name, directory=DEFAULT_DIR):
    name = str(name)
    return Path(name) if name.endswith(".json") else Path(directory) / f"{name}.json"


def save(doc, name, directory=DEFAULT_DIR):
    path = path_for(name, directory)
    write_atomic(path, json.dumps(doc))
    return path


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _check(doc, path, name):
    again = f"save a new one with `fastmlp bench --save {name}`"
    if not isinstance(doc, dict) or "format" not in doc:
        raise GateError(f"{path} is not a fastmlp baseline; {again}")
    if doc["format"] != FORMAT:
        raise GateError(f"baseline {path} has format {doc['format']!r} (fastmlp "
                        f"{doc.get('fastmlp', '?')}); this fastmlp reads format {FORMAT}: {again}")
    processes = doc.get("processes")
    if not isinstance(processes, list) or not processes or \
            not all(isinstance(p, dict) and isinstance(p.get("cases"), dict) for p in processes):
        raise GateError(f"baseline {path} has no timing processes; {again}")
    for p in processes:
        for key, entry in p["cases"].items():
            if not isinstance(entry, dict) or not all(_positive(entry.get(f))
                                                      for f in ("median_s", "min_s")):
                raise GateError(f"baseline {path}: case {key!r} lacks positive median_s and "
                                f"min_s; {again}")


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
        raise GateError(f"baseline {path} is truncated or not JSON ({error}); delete it and "
                        f"save a new one with `fastmlp bench --save {name}`") from None
    _check(doc, path, name)
    return doc


def _figure(process, case, metric, stat):
    entry = process["cases"].get(case)
    if entry is None:
        return None
    value = entry[f"{stat}_s"]
    if metric == "normalized":
        unit = next((e for k, e in process["cases"].items() if k.startswith(CALIBRATION)), None)
        value = value / unit[f"{stat}_s"] if unit else None
    return value


def _cases(processes):
    seen = {}
    for p in processes:
        seen.update(dict.fromkeys(p["cases"]))
    return list(seen)


def check_cases(baseline, processes, name):
    """``GateError`` unless every case of this run is in the baseline (a baseline of
    another fastmlp version, other backends or another ``-k`` has other cases)."""
    known = set(_cases(baseline["processes"]))
    known.update(c for p in baseline["processes"] for c in p.get("skipped", {}))  # too slow there
    missing = [c for c in _cases(processes) if c not in known]
    if missing:
        raise GateError(f"baseline {name!r} (fastmlp {baseline.get('fastmlp', '?')}) lacks "
                        f"{len(missing)} case(s) of this run, e.g. {missing[0]!r}: it was "
                        "made by another fastmlp version or with other --backends, -k or "
                        f"--quick; save a new one with `fastmlp bench --save {name}`")


def _memory(a, b, case):
    """The memory regression of ``case`` from side ``a`` to ``b``, or ``None``."""
    def least(processes, field):
        values = [p["cases"][case][field] for p in processes
                  if field in p["cases"].get(case, {})]
        return min(values) if values else None

    for field, what in (("alloc_b", "allocates"), ("kept_b", "keeps")):
        before, after = least(a, field), least(b, field)
        slack = ALLOC_SLACK_B + ALLOC_SLACK_SHARE * (before or 0)
        if before is not None and after is not None and after > before + slack:
            return f"{what} {after - before:+,} B per call ({before:,} -> {after:,})"
    return None


def compare(a, b, threshold=0.15, paired=True, metric="seconds", stat="min"):
    """Every case timed on both sides: ``dict(rows, only_a, only_b, rss)``.

    ``paired``: process i of ``a`` and of ``b`` ran back to back (``--against``),
    otherwise the two sides are independent (a baseline). Each row: ``case,
    ratio, low, high, verdict, n, memory``.
    """
    if metric not in ("normalized", "seconds") or stat not in ("min", "median"):
        raise GateError(f"metric must be normalized or seconds and stat min or median, got "
                        f"{metric!r}, {stat!r}")
    in_a, in_b = _cases(a), _cases(b)
    rows = []
    for case in (c for c in in_b if c in set(in_a)):
        xs = [_figure(p, case, metric, stat) for p in a]
        ys = [_figure(p, case, metric, stat) for p in b]
        if paired:
            pairs = [(x, y) for x, y in zip(xs, ys) if x and y]
            xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
        else:
            xs, ys = [x for x in xs if x], [y for y in ys if y]
        row = stats.ratio(xs, ys, paired, threshold) if xs and ys else dict(
            ratio=math.nan, low=None, high=None, verdict="inconclusive", n=0, fails=False)
        rows.append(dict(row, case=case, memory=_memory(a, b, case),
                         a_s=float(np.median(xs)) if xs else math.nan,
                         b_s=float(np.median(ys)) if ys else math.nan))
    rss = [float(np.median([p["peak_rss_b"] for p in side if "peak_rss_b" in p] or [math.nan]))
           for side in (a, b)]
    return dict(rows=rows, only_a=[c for c in in_a if c not in set(in_b)],
                only_b=[c for c in in_b if c not in set(in_a)], rss=rss, threshold=threshold,
                paired=paired, metric=metric, stat=stat)


def rss_regressed(result):
    before, after = result["rss"]
    return after > before * (1 + result["threshold"]) and after - before > RSS_SLACK_B


def failed(result):
    """Exit status 1: a case slower with its whole interval above the threshold, or a
    memory regression."""
    return any(r["fails"] or r["memory"] for r in result["rows"]) or \
        rss_regressed(result)


def _interval(r):
    if r["low"] is None:
        return "[too few processes]"
    return f"[{r['low']:.3f}, {r['high']:.3f}]"


#: The order of the report: what fails first, then what needs another look.
ORDER = {"slower": 0, "inconclusive": 1, "faster": 2, "same": 3}


def _rank(row):
    return not row["fails"], ORDER[row["verdict"]], -np.nan_to_num(row["ratio"])


def lines(result, names=("A", "B"), show="moved"):
    """The terminal report: moved cases (``show='all'``: every case), then a summary."""
    out = []
    unit = "x calibration" if result["metric"] == "normalized" else "s"
    for r in sorted(result["rows"], key=_rank):
        if show == "all" or r["verdict"] != "same" or r["memory"]:
            verdict = "SLOWER" if r["fails"] else r["verdict"]
            out.append(f"{verdict:>12}  {r['ratio']:6.3f}x {_interval(r):>16}  {r['case']}  "
                       f"({r['a_s']:.4g} -> {r['b_s']:.4g} {unit})")
        if r["memory"]:
            out.append(f"{'MEMORY':>12}  {r['memory']}  {r['case']}")
    for side, cases in ((names[0], result["only_a"]), (names[1], result["only_b"])):
        if cases:
            out.append(f"{len(cases)} case(s) only in {side}: {', '.join(cases[:3])}"
                       + (" ..." if len(cases) > 3 else ""))
    before, after = result["rss"]
    if not math.isnan(before + after):
        flag = "MEMORY: " if rss_regressed(result) else ""
        out.append(f"{flag}peak RSS of a timing process: {names[0]} {before / 2 ** 20:.0f} MiB, "
                   f"{names[1]} {after / 2 ** 20:.0f} MiB ({after / before - 1:+.1%})")
    counts = {v: sum(r["verdict"] == v for r in result["rows"]) for v in stats.VERDICTS}
    n = max((r["n"] for r in result["rows"]), default=0)
    out.append(f"{len(result['rows'])} cases, {names[1]} over {names[0]}, "
               f"{stats.CONFIDENCE:.0%} intervals over {n} {'pairs of ' * result['paired']}"
               f"processes, threshold +{result['threshold']:.0%}: "
               + ", ".join(f"{counts[v]} {v}" for v in stats.VERDICTS)
               + f" ({sum(r['fails'] for r in result['rows'])} failing: the whole interval "
               f"above the threshold); {sum(bool(r['memory']) for r in result['rows'])} "
               "memory regressions")
    return out


def noise_lines(result):
    """``--aa``: each case's noise floor (how far from 1 its A/A interval reaches), widest
    first, and a summary over the cases."""
    rows = [r for r in result["rows"] if r["low"] is not None]
    if not rows:
        return ["no interval: too few processes"]
    reach = {r["case"]: max(r["high"] - 1, 1 - r["low"]) for r in rows}
    out = [f"noise floor  +-{reach[r['case']]:5.1%}  width {r['high'] / r['low'] - 1:5.1%}  "
           f"{r['case']}" for r in sorted(rows, key=lambda r: -reach[r["case"]])]
    floors = np.array(list(reach.values()))
    out.append(f"noise floors over {len(floors)} cases: median +-{np.median(floors):.1%}, "
               f"{np.mean(floors <= result['threshold']):.0%} of them within "
               f"--fail-above {result['threshold']:.0%}; a case whose floor is above the "
               "threshold stays inconclusive: gate it with a --fail-above above its floor")
    return out
