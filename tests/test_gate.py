"""The regression gate: its statistics, verdicts, files and errors, and ``--against`` end to end.

The statistics are checked on synthetic samples (and their exact distributions
against SciPy's); the end-to-end runs use a throwaway git repository holding a
copy of this fastmlp (numpy backend only, no compiled extension) and detect a
case made 3x slower, a margin no machine noise reaches.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from fastmlp import cli
from fastmlp.harness import against, benchjson, gate, stats
from fastmlp.harness.store import write_atomic

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- statistics

@pytest.mark.parametrize("n", [6, 9])
def test_signed_rank_distribution_matches_scipy(n):
    counts = stats._signed_rank_counts(n)
    d = np.random.default_rng(n).normal(0.2, 1, n)
    result = scipy.stats.wilcoxon(d, alternative="less", method="exact")
    assert np.cumsum(counts)[int(result.statistic)] / 2 ** n == pytest.approx(result.pvalue)


@pytest.mark.parametrize("n, m", [(6, 6), (5, 8)])
def test_rank_sum_distribution_matches_scipy(n, m):
    counts = stats._rank_sum_counts(n, m)
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(0, 1, n), rng.normal(0.5, 1, m)
    result = scipy.stats.mannwhitneyu(a, b, alternative="less", method="exact")
    assert np.cumsum(counts)[int(result.statistic)] / counts.sum() == pytest.approx(result.pvalue)


def lognormal(rng, ratio, sigma, n):
    return np.exp(rng.normal(np.log(ratio), sigma, n))


@pytest.mark.parametrize("paired", [True, False])
def test_a_shifted_distribution_is_slower_and_an_identical_one_the_same(paired):
    rng = np.random.default_rng(0)
    a = lognormal(rng, 1e-4, 0.03, 10)
    slowed = stats.ratio(a, a * lognormal(rng, 1.3, 0.03, 10), paired, threshold=0.15)
    assert slowed["verdict"] == "slower" and 1.15 < slowed["low"] < 1.3 < slowed["high"]
    assert stats.ratio(a, a * lognormal(rng, 0.7, 0.03, 10), paired)["verdict"] == "faster"
    same = stats.ratio(a, a.copy(), paired, threshold=0.15)
    assert same["verdict"] == "same" and same["ratio"] == pytest.approx(1)


def test_a_noisy_small_sample_is_inconclusive():
    rng = np.random.default_rng(1)
    noisy = stats.ratio(lognormal(rng, 1, 0.3, 6), lognormal(rng, 1.2, 0.3, 6), True, 0.15)
    assert noisy["verdict"] == "inconclusive" and noisy["low"] < 1.15 < noisy["high"]
    too_few = stats.ratio([1.0] * 5, [2.0] * 5, True, 0.15)
    assert too_few["verdict"] == "inconclusive" and too_few["low"] is None


@pytest.mark.parametrize("paired", [True, False])
def test_intervals_cover_the_true_ratio_at_their_level(paired):
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(400):
        a, b = lognormal(rng, 1, 0.1, 8), lognormal(rng, 1.2, 0.1, 8)
        r = stats.ratio(a, b, paired)
        covered += r["low"] <= 1.2 <= r["high"]
    assert 0.92 <= covered / 400 <= 0.995  # 95% nominal (exact levels: 96.1% and 95.0%)


def drifting_pairs(rng, ratio, n=10, drift=0.3, sigma=0.06):
    """``n`` pairs of timings of a shared machine: each pair's speed drifts (``drift``,
    shared by its two processes), each process adds its own noise (``sigma``)."""
    speed = lognormal(rng, 1e-4, drift, n)
    return speed * lognormal(rng, 1, sigma, n), speed * lognormal(rng, ratio, sigma, n)


def test_a_25_percent_slowdown_between_drifting_pairs_is_slower_and_aa_is_not():
    rng = np.random.default_rng(9)
    slowed = [stats.ratio(*drifting_pairs(rng, 1.25), True, 0.15) for _ in range(200)]
    same = [stats.ratio(*drifting_pairs(rng, 1.0), True, 0.15) for _ in range(200)]
    assert sum(r["verdict"] == "slower" for r in slowed) >= 196
    assert sum(r["fails"] for r in slowed) < sum(r["verdict"] == "slower" for r in slowed)
    assert all(r["fails"] == (r["verdict"] == "slower" and r["low"] > 1.15) for r in slowed)
    assert sum(r["verdict"] == "slower" for r in same) <= 5  # under 2.5% expected
    assert not any(r["fails"] for r in same)
    # the pairing is what removes the drift: unpaired, the same samples rarely decide
    unpaired = [stats.ratio(*drifting_pairs(rng, 1.25), False, 0.15) for _ in range(200)]
    assert sum(r["verdict"] == "slower" for r in unpaired) < 100


def test_slower_needs_both_significance_and_the_threshold():
    assert stats.verdict(1.25, (1.05, 1.4), 0.15) == "slower"  # significant, beyond 15%
    assert stats.verdict(1.25, (0.98, 1.4), 0.15) == "inconclusive"  # not significant
    assert stats.verdict(1.10, (1.05, 1.14), 0.15) == "same"  # significant but small
    assert stats.verdict(1.12, (1.05, 1.20), 0.15) == "inconclusive"
    assert stats.verdict(0.8, (0.7, 0.95), 0.15) == "faster"
    assert stats.verdict(1.3, None, 0.15) == "inconclusive"
    assert not stats.beyond(dict(verdict="slower", low=1.05), 0.15)
    assert stats.beyond(dict(verdict="slower", low=1.16), 0.15)


def test_a_fast_call_preempted_twice_is_still_timed_in_rounds_of_many_calls():
    from fastmlp.harness import timing

    calls = []

    def fn():  # the first call and the first probe are slow, as when preempted
        calls.append(1)
        if len(calls) <= 2:
            time.sleep(3 * timing.ROUND_SECONDS)

    timer = timing.Timer(fn, budget=0.05)
    assert timer.inner > 10 and timer.samples == []
    calls[:] = [1]  # now the first call sizing a round is the preempted one
    assert timing._calls_per_round(fn) > 10
    slow = timing.Timer(lambda: time.sleep(1.5 * timing.ROUND_SECONDS), budget=0.05)
    assert slow.inner == 1 and len(slow.samples) == timing.PROBES


# ---------------------------------------------------------------- comparisons

def process(seconds, alloc=200, rss=100 * 2 ** 20, calibration=1e-3):
    """A worker document: ``seconds[case]`` per call, a few rounds of it."""
    cases = {case: dict(samples=[s, s * 1.01, s * 1.02], median_s=s * 1.01, min_s=s, inner=10,
                        alloc_b=alloc, kept_b=0) for case, s in seconds.items()}
    cases["reference/calibration/x/f64@numpy"] = dict(samples=[calibration], median_s=calibration,
                                                      min_s=calibration, inner=1)
    return dict(cases=cases, skipped={}, peak_rss_b=rss)


def side(rng, slow=1.0, n=8, **kw):
    return [process({"step/a/1/f32@numpy": 1e-4 * rng.lognormal(0, 0.01) * slow,
                     "step/b/1/f32@numpy": 2e-4 * rng.lognormal(0, 0.01)}, **kw) for _ in range(n)]


def test_compare_reports_the_slowed_case_and_fails():
    rng = np.random.default_rng(3)
    result = gate.compare(side(rng), side(rng, slow=1.4), 0.15, paired=True)
    verdicts = {r["case"]: r["verdict"] for r in result["rows"]}
    assert verdicts["step/a/1/f32@numpy"] == "slower" and verdicts["step/b/1/f32@numpy"] == "same"
    assert gate.failed(result)
    text = "\n".join(gate.lines(result, ("REF main", "the working tree")))
    assert "SLOWER" in text and "step/a/1/f32@numpy" in text and "1 slower" in text


def test_a_slower_case_within_the_noise_of_the_threshold_is_listed_and_passes():
    rng = np.random.default_rng(10)
    a = side(rng, n=10)
    b = [process({"step/a/1/f32@numpy": p["cases"]["step/a/1/f32@numpy"]["min_s"] * s,
                  "step/b/1/f32@numpy": p["cases"]["step/b/1/f32@numpy"]["min_s"]})
         for p, s in zip(a, lognormal(rng, 1.2, 0.08, 10))]
    result = gate.compare(a, b, 0.15)
    row = next(r for r in result["rows"] if r["case"] == "step/a/1/f32@numpy")
    assert row["verdict"] == "slower" and row["low"] < 1.15 < row["ratio"] and not row["fails"]
    assert not gate.failed(result)
    text = "\n".join(gate.lines(result))
    assert "SLOWER" not in text and "1 slower" in text and "(0 failing" in text


def test_a_call_that_starts_allocating_fails_whatever_its_time():
    rng = np.random.default_rng(4)
    result = gate.compare(side(rng), side(rng, alloc=200 + 4096), 0.15)
    assert all(r["verdict"] == "same" for r in result["rows"]) and gate.failed(result)
    assert "allocates +4,096 B per call" in "\n".join(gate.lines(result))
    assert not gate.failed(gate.compare(side(rng), side(rng, alloc=300), 0.15))  # within slack
    grown = gate.compare(side(rng), side(rng, rss=300 * 2 ** 20), 0.15)
    assert gate.failed(grown) and "MEMORY: peak RSS" in "\n".join(gate.lines(grown))


def test_a_fit_calls_set_up_may_move_by_its_share_but_not_grow_past_it():
    # A fit call's tables follow its first kernel call's time: +6% was seen in an A/A run.
    rng, setup = np.random.default_rng(5), 1_900_000
    wobble = gate.compare(side(rng, alloc=setup), side(rng, alloc=int(setup * 1.06)), 0.15)
    assert not gate.failed(wobble)
    grown = gate.compare(side(rng, alloc=setup), side(rng, alloc=setup * 2), 0.15)
    assert gate.failed(grown) and "allocates +1,900,000 B" in "\n".join(gate.lines(grown))


def test_normalized_figures_carry_across_a_faster_machine():
    rng = np.random.default_rng(5)
    slow_machine = side(rng)
    fast_machine = [process({k: e["min_s"] / 2 for k, e in p["cases"].items()
                             if not k.startswith("reference")}, calibration=0.5e-3)
                    for p in slow_machine]
    normalized = gate.compare(slow_machine, fast_machine, 0.15, False, "normalized")
    assert all(r["verdict"] == "same" for r in normalized["rows"])
    seconds = gate.compare(slow_machine, fast_machine, 0.15, False, "seconds")
    assert all(r["verdict"] == "faster" for r in seconds["rows"] if "step" in r["case"])


def test_aa_prints_the_noise_floor_and_a_threshold():
    rng = np.random.default_rng(6)
    text = "\n".join(gate.noise_lines(gate.compare(side(rng), side(rng), 0.15)))
    assert "noise floor" in text and "100% of them within --fail-above 15%" in text


def test_a_baseline_with_other_cases_is_refused():
    rng = np.random.default_rng(7)
    baseline = gate.document(side(rng), quick=True)
    other = [process({"step/renamed/1/f32@numpy": 1e-4}) for _ in range(8)]
    with pytest.raises(gate.GateError, match="lacks 1 case.*another fastmlp version"):
        gate.check_cases(baseline, other, "base")


# ---------------------------------------------------------------- files and bad input

def bench(tmp_path, *args):
    return cli.main(["bench", "--quick", "--no-progress", "--dir", str(tmp_path), *args])


def one_line_error(capsys, message):
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ('{"format": 3, "processes": [{"cases": {}', "is truncated or not JSON"),
    ("[1, 2]", "is not a fastmlp baseline"),
    ('{"format": 2, "cases": {}}', "has format 2"),
    ('{"format": 99, "processes": []}', "this fastmlp reads format 3"),
    ('{"format": 3, "processes": [{"cases": {"a@numpy": {"median_s": -1}}}]}',
     "lacks positive median_s"),
])
def test_a_bad_baseline_is_a_one_line_error(tmp_path, capsys, content, message):
    if content is not None:
        (tmp_path / "base.json").write_text(content)
    assert bench(tmp_path, "--compare", "base") == 2
    one_line_error(capsys, message)


@pytest.mark.parametrize("args, message", [
    (["--aa", "--fail-above=-5%"], "must be >= 0"),
    (["--aa", "--fail-above", "-0.05"], "must be >= 0"),
    (["--aa", "--fail-above", "fast"], "expected a percentage"),
    (["--aa", "--fail-above", "nan"], "expected a percentage"),
    (["--aa", "--against", "HEAD"], "give one of --against, --aa and --compare"),
    ([], "give --against REF"),
    (["--aa", "--processes", "3"], "at least 6"),
])
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    try:
        status = bench(tmp_path, *args)
    except SystemExit as stop:  # argparse's own checks
        status = stop.code
    assert status == 2
    one_line_error(capsys, message)


def test_an_interrupted_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch):
    target = tmp_path / "base.json"
    write_atomic(target, "old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new" * 1000)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["base.json"]


def test_json_is_read_back_by_pytest_benchmark(tmp_path):
    from pytest_benchmark.storage.file import FileStorage

    rng = np.random.default_rng(8)
    a, b = side(rng), side(rng, slow=1.4)
    path = benchjson.write(tmp_path / "0001_run.json", b, gate.compare(a, b, 0.15), 0.05)
    logger = type("Logger", (), {"warning": print, "info": print})()
    loaded = {bench["name"]: bench for bench in FileStorage(tmp_path, logger).load_benchmarks()}
    slowed = loaded["step/a/1/f32@numpy"]
    assert slowed["group"] == "step/a/1/f32" and slowed["rounds"] == 24
    assert slowed["min"] == min(slowed["data"])
    assert slowed["ops"] == pytest.approx(1 / slowed["mean"])
    assert slowed["extra_info"]["verdict"] == "slower" and slowed["extra_info"]["alloc_b"] == 200
    shown = subprocess.run([sys.executable, "-m", "pytest_benchmark", "compare", str(path)],
                           capture_output=True, text=True, cwd=tmp_path)
    assert shown.returncode == 0 and "step/a/1/f32@numpy" in shown.stdout, shown.stderr


# ---------------------------------------------------------------- --against end to end

def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=gate", "-c", "user.email=gate@test", *args],
                   cwd=cwd, check=True, capture_output=True)


#: Appended to the copy's workloads: the XOR step runs three times per call.
SLOWER_XOR = """
import dataclasses as _dc
_unpatched_quick_suite = quick_suite


def _thrice(make):
    def build(raw, dt):
        fn = make(raw, dt)
        return lambda: (fn(), fn(), fn())
    return build


def quick_suite():
    return [_dc.replace(c, make=_thrice(c.make)) if c.name == "xor" else c
            for c in _unpatched_quick_suite()]
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository holding this fastmlp's Python files without the compiled backends
    (their imports would cost seconds a process) and a setup.py building nothing."""
    root = tmp_path_factory.mktemp("repo")
    skip = shutil.ignore_patterns("*.so", "*.c", "__pycache__", "*numba*", "*cython*")
    shutil.copytree(ROOT / "fastmlp", root / "fastmlp", ignore=skip)
    (root / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (root / ".gitignore").write_text(".benchmarks/\n__pycache__/\n*.egg-info/\nbuild/\n")
    git("init", "-q", cwd=root)
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "base", cwd=root)
    return root


def run_gate(repo, *args):
    """``fastmlp bench`` of the copy, in a process of its own (the copy is the working tree)."""
    env = dict(os.environ, PYTHONPATH=str(repo), FASTMLP_ALLOW_MISSING_BACKENDS="1")
    return subprocess.run([sys.executable, "-m", "fastmlp", "bench", "--quick", "--no-progress",
                           "--backends", "numpy", "-k", "step/", "--processes", "6", *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def test_against_detects_a_slower_step_and_reuses_the_build(repo, tmp_path):
    workloads = repo / "fastmlp" / "harness" / "workloads.py"
    original = workloads.read_text()
    workloads.write_text(original + SLOWER_XOR)  # the working tree's change
    try:
        done = run_gate(repo, "--against", "HEAD", "--json", str(tmp_path / "run.json"))
    finally:
        workloads.write_text(original)
    assert done.returncode == 1, done.stdout + done.stderr
    slower = [line for line in done.stdout.splitlines() if "SLOWER" in line]
    assert len(slower) == 1 and "step/xor/2-2-1 b4 adam/f32@numpy" in slower[0], done.stdout
    assert "building REF 'HEAD'" in done.stderr and "peak RSS" in done.stdout
    names = {b["name"] for b in json.loads((tmp_path / "run.json").read_text())["benchmarks"]}
    assert "step/xor/2-2-1 b4 adam/f32@numpy" in names
    built = list((repo / ".benchmarks" / "fastmlp" / "worktrees").iterdir())
    assert [p.name for p in built] == [against.resolve("HEAD", repo)[:12]]
    assert (built[0] / against.MARKER).is_file()
    said = []
    assert against.worktree("HEAD", repo, repo / ".benchmarks" / "fastmlp", said.append) == \
        built[0] and said == []  # reused, not built again


def test_aa_passes_prints_the_noise_floor_and_saves_a_baseline_to_compare(repo):
    done = run_gate(repo, "--aa", "--save", "base")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "noise floor" in done.stdout and "noise floors over" in done.stdout
    saved = gate.load("base", repo / ".benchmarks" / "fastmlp")
    assert len(saved["processes"]) == 6 and saved["commit"] == against.resolve("HEAD", repo)
    compared = run_gate(repo, "--compare", "base", "--fail-above", "100%")
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "the working tree over baseline base" in compared.stdout
    assert "intervals over 6 processes" in compared.stdout  # unpaired: a baseline


def test_an_unusable_ref_is_a_one_line_error(repo, tmp_path):
    done = run_gate(repo, "--against", "no-such-branch")
    assert done.returncode == 2 and "is not a commit" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    broken = tmp_path / "broken"
    git("clone", "-q", str(repo), str(broken), cwd=tmp_path)
    (broken / "setup.py").write_text("raise SystemExit('error: no compiler here')\n")
    git("commit", "-q", "-am", "a setup.py that fails", cwd=broken)
    failed = run_gate(broken, "--against", "HEAD")
    assert failed.returncode == 2 and "does not build" in failed.stderr, failed.stderr
    assert "no compiler here" in failed.stderr and "Traceback" not in failed.stderr
    worktrees = broken / ".benchmarks" / "fastmlp" / "worktrees"
    log = f"{against.resolve('HEAD', broken)[:12]}.build.log"
    assert [p.name for p in worktrees.iterdir()] == [log]  # no worktree, only the build's log


def test_a_dirty_ref_worktree_is_refused(repo):
    path = against.worktree("HEAD", repo, repo / ".benchmarks" / "fastmlp")
    (path / "setup.py").write_text("# edited by hand\n")
    try:
        with pytest.raises(gate.GateError, match="has local changes"):
            against.worktree("HEAD", repo, repo / ".benchmarks" / "fastmlp")
    finally:
        git("checkout", "--", "setup.py", cwd=path)


def test_an_interrupted_build_leaves_no_worktree(repo, tmp_path, monkeypatch):
    def interrupted(path, label, log):
        assert path.is_dir()  # the checkout exists while it builds...
        raise KeyboardInterrupt

    monkeypatch.setattr(against, "build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        against.worktree("HEAD", repo, tmp_path)
    assert list((tmp_path / "worktrees").iterdir()) == []  # ...and not after
    listed = subprocess.run(["git", "worktree", "list"], cwd=repo, capture_output=True, text=True)
    assert str(tmp_path) not in listed.stdout


def test_a_killed_build_is_swept_and_a_running_one_kept(repo):
    directory = repo / ".benchmarks" / "fastmlp"
    against.worktree("HEAD", repo, directory)
    dead = directory / "worktrees" / ".building-0123456789ab-999999999-x"  # no such pid
    running = directory / "worktrees" / f".building-0123456789ab-{os.getpid()}-y"
    dead.mkdir()
    running.mkdir()
    against.worktree("HEAD", repo, directory)
    assert not dead.exists() and running.is_dir()
    running.rmdir()
