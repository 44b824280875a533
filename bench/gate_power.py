"""How often the regression gate is right on this machine: its measured power.

    .venv/bin/python bench/gate_power.py [--runs 10] [--case ID] [--slowdown 0.25]

1. Makes a throwaway worktree of HEAD (``.benchmarks/fastmlp/power/slow-<sha>``, detached,
   no branch) and commits there a change that makes one step case (``--case``, default
   the spiral step on numba) spin 25% longer per call: a wrapper appended to
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

#: Appended to the slowed worktree's workloads.py: the case's calls spin ``factor`` times
#: their own fastest time longer (measured when the case is built).
PATCH = '''

# bench/gate_power.py's throwaway change: {case} spins {factor:.0%} longer per call.
import time as _power_time


def _power_spin(fn, factor):
    for _ in range(20):
        fn()
    fastest = min(_power_timed(fn) for _ in range(200))
    extra = factor * fastest

    def slowed():
        fn()
        end = _power_time.perf_counter() + extra
        while _power_time.perf_counter() < end:
            pass
    return slowed


def _power_timed(fn):
    start = _power_time.perf_counter()
    fn()
    return _power_time.perf_counter() - start


class _PowerSlowed(Case):
    def build(self, backend):
        fn = super().build(backend)
        return _power_spin(fn, {factor!r}) if backend == {backend!r} else fn


_power_quick_suite = quick_suite


def quick_suite():
    return [_PowerSlowed(*(getattr(c, f) for f in c.__dataclass_fields__)) if c.key == {key!r}
            else c for c in _power_quick_suite()]
'''


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=gate power", "-c", "user.email=power@fastmlp",
                    *args], cwd=cwd, check=True, capture_output=True)


def slowed_tree(sha, case, factor):
    """The built worktree of HEAD plus the slowing commit (made once per HEAD and case)."""
    key, backend = case.rsplit("@", 1)
    path, marker = POWER / f"slow-{sha[:12]}", f"{sha} {case} {factor}\n"
    if (path / against.MARKER).is_file() and (path / against.MARKER).read_text() == marker:
        return path
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT)
    POWER.mkdir(parents=True, exist_ok=True)
    git("worktree", "add", "--detach", str(path), sha, cwd=ROOT)
    workloads = path / "fastmlp" / "harness" / "workloads.py"
    workloads.write_text(workloads.read_text() + PATCH.format(
        case=case, factor=factor, backend=backend, key=key))
    git("commit", "-q", "-am", f"gate power: {case} spins {factor:.0%} longer", cwd=path)
    against.build(path, "the slowed worktree", POWER / "slow.build.log")
    (path / against.MARKER).write_text(marker)
    return path


def gate(tree, args, out):
    """One ``fastmlp bench`` run of ``tree``: ``(exit status, seconds, {case: verdict})``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fastmlp", "bench", "--quick", "--no-progress",
                           "--dir", str(POWER), "--json", str(out), *args],
                          cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"gate_power: the gate failed: {done.stderr.strip()}")
    verdicts = {b["name"]: b["extra_info"].get("verdict")
                for b in json.loads(out.read_text())["benchmarks"]}
    return done.returncode, seconds, verdicts


def summary(results, case):
    def rate(kind, test):
        runs = [r for r in results if r["kind"] == kind]
        return f"{sum(test(r) for r in runs)}/{len(runs)}"

    def slower_other(r):
        return any(v == "slower" for c, v in r["verdicts"].items() if c != case)

    times = sorted(r["seconds"] for r in results if r["kind"] == "against")
    return [f"--against, {case} slowed: reported slower in "
            f"{rate('against', lambda r: r['verdicts'].get(case) == 'slower')} runs; "
            f"another case slower in {rate('against', slower_other)}",
            f"--aa: a case slower in {rate('aa', slower_other)} runs",
            f"--against --quick took {times[0]:.0f}-{times[-1]:.0f} s "
            f"(median {times[len(times) // 2]:.0f} s)" if times else ""]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--case", default=CASE)
    p.add_argument("--slowdown", type=float, default=0.25)
    args = p.parse_args(argv)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    slow = slowed_tree(sha, args.case, args.slowdown)
    ref = against.worktree(sha, slow, POWER, say=print)
    for label, tree in (("REF", ref), ("slowed", slow)):
        against.warm_up(tree, label, quick=True)  # fills the Numba caches, untimed
    results, path = [], POWER / "results.json"
    for i in range(args.runs):
        for kind, tree, extra in (("against", slow, ["--against", sha]), ("aa", ref, ["--aa"])):
            status, seconds, verdicts = gate(tree, extra, POWER / f"{kind}.json")
            results.append(dict(kind=kind, run=i, status=status, seconds=seconds,
                                load=os.getloadavg()[0], verdicts=verdicts))
            write_atomic(path, json.dumps(dict(case=args.case, slowdown=args.slowdown,
                                               sha=sha, results=results), indent=1))
            print(f"{kind} run {i + 1}: exit {status}, {seconds:.0f} s, load "
                  f"{os.getloadavg()[0]:.1f}, slower: "
                  f"{[c for c, v in verdicts.items() if v == 'slower']}", flush=True)
    print("\n".join(summary(results, args.case)))


if __name__ == "__main__":
    main()
