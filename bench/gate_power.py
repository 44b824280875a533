"""How often the regression gate is right on this machine: its measured power.

    .venv/bin/python bench/gate_power.py [--runs 10] [--case ID] [--slowdown 0.25]

1. Makes a throwaway worktree of HEAD (``.benchmarks/fastmlp/power/slow``, detached, no
   branch; moved forward in place when HEAD moves) and commits there a change that makes
   one step case (``--case``, default the spiral step on numba) do 25% more work per call
   (every fourth call steps twice): a wrapper appended to
   ``fastmlp/harness/workloads.py``, which needs nothing of the backends' internals.
2. Alternates, ``--runs`` times each: ``fastmlp bench --against HEAD --quick`` run from
   the slowed worktree (is the case reported *slower*? is any other?), and
   ``fastmlp bench --aa --quick`` run from HEAD's worktree (is any case *slower*?), timing
   each. REF is built, and both Numba caches filled, before the first timed run.

Every finished run is written at once to ``.benchmarks/fastmlp/power/results.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastmlp.harness import against  # noqa: E402
from fastmlp.harness.store import write_atomic  # noqa: E402

POWER = ROOT / ".benchmarks" / "fastmlp" / "power"
CASE = "step/spiral/2-100-3 b300 adam/f32@numba"

#: Appended to the slowed worktree's workloads.py: the case's calls do ``factor`` more of
#: the step's own work (every fourth call steps twice, for 0.25), so the slowdown is the
#: same in every process; a spin calibrated per process moved it by 21-37% on a busy machine.
PATCH = '''

# bench/gate_power.py's throwaway change: {case} does {factor:.0%} more steps per call.
def _power_more(fn, factor):
    debt = [0.0]

    def slowed():
        fn()
        debt[0] += factor
        while debt[0] >= 1:
            fn()
            debt[0] -= 1
    return slowed


class _PowerSlowed(Case):
    def build(self, backend):
        fn = super().build(backend)
        return _power_more(fn, {factor!r}) if backend == {backend!r} else fn


_power_quick_suite = quick_suite


def quick_suite():
    return [_PowerSlowed(*(getattr(c, f) for f in c.__dataclass_fields__)) if c.key == {key!r}
            else c for c in _power_quick_suite()]
'''


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=gate power", "-c", "user.email=power@fastmlp",
                    *args], cwd=cwd, check=True, capture_output=True)


def check_out(path, sha):
    """``sha`` checked out in the worktree at ``path``, made if missing. An existing one is
    moved to ``sha`` in place: the files that did not change keep their times, so Numba's
    cache of them stays valid (a new worktree compiles every kernel again, minutes)."""
    if (path / ".git").is_file():
        (path / against.MARKER).unlink(missing_ok=True)
        git("checkout", "-q", "--detach", "--force", sha, cwd=path)
    else:
        git("worktree", "add", "--detach", str(path), sha, cwd=ROOT)


def slowed_tree(sha, case, factor):
    """The built worktree of HEAD plus the slowing commit (made again when HEAD moves)."""
    key, backend = case.rsplit("@", 1)
    path, marker = POWER / "slow", f"{sha} {case} {factor}\n"
    if (path / against.MARKER).is_file() and (path / against.MARKER).read_text() == marker:
        return path
    POWER.mkdir(parents=True, exist_ok=True)
    check_out(path, sha)
    workloads = path / "fastmlp" / "harness" / "workloads.py"
    workloads.write_text(workloads.read_text() + PATCH.format(
        case=case, factor=factor, backend=backend, key=key))
    git("commit", "-q", "-am", f"gate power: {case} does {factor:.0%} more steps", cwd=path)
    against.build(path, "the slowed worktree", POWER / "slow.build.log")
    (path / against.MARKER).write_text(marker)
    return path


def ref_tree(sha):
    """REF's built worktree where ``--against`` looks for it, carried forward from an
    earlier HEAD's when there is one (see ``check_out``)."""
    root, final = POWER / "worktrees", POWER / "worktrees" / sha[:12]
    older = [p for p in root.glob("[0-9a-f]*") if p != final and (p / against.MARKER).is_file()]
    if not (final / against.MARKER).is_file() and older:
        git("worktree", "move", str(older[0]), str(final), cwd=ROOT)
        check_out(final, sha)
        against.build(final, f"REF {sha[:12]}", root / f"{sha[:12]}.build.log")
        (final / against.MARKER).write_text(sha + "\n")
    return against.worktree(sha, ROOT, POWER, say=print)


#: Run in the slowed worktree: the case as HEAD builds it and as the slowing commit does,
#: timed in turns in one process; prints the ratio of their fastest rounds.
CHECK = """
import json, sys
from fastmlp.harness import timing, workloads
key, backend = sys.argv[1].rsplit("@", 1)
plain, slowed = (next(c for c in suite() if c.key == key)
                 for suite in (workloads._power_quick_suite, workloads.quick_suite))
timers = [timing.Timer(c.build(backend), 0.5) for c in (plain, slowed)]
timing.interleave(timers, max_rounds=1000, turns=10)
print(json.dumps([t.result()["min_s"] for t in timers]))
"""


def true_slowdown(slow, case):
    """The slowing commit's own ratio for ``case``: both builds timed in turns in one
    process of the slowed worktree (what a perfect gate would report)."""
    done = subprocess.run([sys.executable, "-c", CHECK, case], cwd=slow, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(slow)), check=True)
    plain, slowed = json.loads(done.stdout.strip().splitlines()[-1])
    return slowed / plain


def gate(tree, args, out):
    """One ``fastmlp bench`` run of ``tree``: ``(exit status, seconds, {case: row})``, each
    row the case's ``verdict``, ``fails``, ``ratio``, ``low`` and ``high``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fastmlp", "bench", "--quick", "--no-progress",
                           "--dir", str(POWER), "--json", str(out), *args],
                          cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1) or not out.is_file():
        raise SystemExit(f"gate_power: the gate failed: {done.stderr.strip()}")
    rows = {b["name"]: {f: b["extra_info"].get(f) for f in FIELDS}
            for b in json.loads(out.read_text())["benchmarks"]}
    return done.returncode, seconds, rows


FIELDS = ("verdict", "fails", "ratio", "low", "high")


def detections(results, kind):
    """``{case: runs of kind reporting it slower}``, and how many runs of kind there were."""
    runs = [r for r in results if r["kind"] == kind]
    counts = {}
    for r in runs:
        for case, row in r["rows"].items():
            counts[case] = counts.get(case, 0) + (row["verdict"] == "slower")
    return counts, len(runs)


def summary(results, case):
    """The power figures: detections out of runs, per case, and the runs' times."""
    out = []
    for kind in ("against", "aa"):
        counts, n = detections(results, kind)
        slowed = [r["rows"][case] for r in results if r["kind"] == kind and case in r["rows"]]
        if kind == "against" and n:
            out.append(f"--against, {case} slowed: reported slower in {counts.get(case, 0)}/{n} "
                       f"runs, failing the gate (whole interval above the threshold) in "
                       f"{sum(bool(r['fails']) for r in slowed)}/{n}; its ratios "
                       + ", ".join(f"{r['ratio']:.2f}" for r in slowed))
        others = {c: k for c, k in counts.items() if k and not (kind == "against" and c == case)}
        out.append(f"--{kind}: other cases reported slower (runs out of {n}): "
                   + (", ".join(f"{c} {k}/{n}" for c, k in sorted(others.items(),
                                                                 key=lambda x: -x[1]))
                      or "none"))
        times = sorted(r["seconds"] for r in results if r["kind"] == kind)
        if times:
            out.append(f"--{kind} --quick took {times[0]:.0f}-{times[-1]:.0f} s "
                       f"(median {times[len(times) // 2]:.0f} s), load average "
                       + ", ".join(f"{r['load']:.1f}" for r in results if r["kind"] == kind))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--case", default=CASE)
    p.add_argument("--slowdown", type=float, default=0.25)
    args = p.parse_args(argv)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    slow = slowed_tree(sha, args.case, args.slowdown)
    ref = ref_tree(sha)
    against.warm_up([("REF", ref), ("slowed", slow)], quick=True)  # fills the Numba caches
    factor = true_slowdown(slow, args.case)
    print(f"the slowing commit makes {args.case} {factor:.3f}x as slow (one process, in turns)")
    results, path = [], POWER / "results.json"
    for i in range(args.runs):
        for kind, tree, extra in (("against", slow, ["--against", sha]), ("aa", ref, ["--aa"])):
            status, seconds, rows = gate(tree, extra, POWER / f"{kind}.json")
            results.append(dict(kind=kind, run=i, status=status, seconds=seconds,
                                load=os.getloadavg()[0], rows=rows))
            write_atomic(path, json.dumps(dict(case=args.case, slowdown=args.slowdown,
                                               measured=factor, sha=sha, results=results),
                                          indent=1))
            print(f"{kind} run {i + 1}: exit {status}, {seconds:.0f} s, load "
                  f"{os.getloadavg()[0]:.1f}, slower: "
                  f"{[c for c, r in rows.items() if r['verdict'] == 'slower']}", flush=True)
    print("\n".join(summary(results, args.case)))


if __name__ == "__main__":
    main()
