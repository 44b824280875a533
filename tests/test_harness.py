"""The benchmark harness: resumable results, quick report, tables (the gate: test_gate.py).

Timing-based checks only compare a workload with itself made 3x slower (a
margin no machine noise reaches); nothing here asserts a wall-clock time.
"""
import argparse
import sys
import time
import types

import numpy as np
import pandas as pd
import pytest

from fastmlp import backends, cli
from fastmlp.harness import report, speed, tables, workloads
from fastmlp.harness.store import ResultStore

DELAY_S = 2e-4


def spin(seconds):
    """Busy-wait (sleep is too coarse for sub-millisecond delays)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def fake_case(name="fake", calls=None):
    def make(raw, dtype):
        def run():
            if calls is not None:
                calls.append(name)
            spin(DELAY_S)
        return run

    return workloads.Case("step", name, "1", "float64", 1e6, make, only=("numpy",))


@pytest.mark.parametrize("text, value", [("15%", 0.15), ("0.15", 0.15), ("100%", 1.0)])
def test_percent(text, value):
    assert cli.percent(text) == pytest.approx(value)


def test_interrupted_run_resumes(tmp_path):
    calls = []
    cases = [fake_case("first", calls), fake_case("second", calls)]

    def interrupt(raw, dtype):
        raise KeyboardInterrupt

    broken = workloads.Case("step", "second", "1", "float64", 1e6, interrupt, only=("numpy",))
    store = ResultStore(tmp_path, "quick")
    with pytest.raises(KeyboardInterrupt):
        speed.run_speed([cases[0], broken], store, budget=0.01)
    assert [r["name"] for r in ResultStore(tmp_path, "quick").rows] == ["first"]
    calls.clear()
    resumed = ResultStore(tmp_path, "quick")
    speed.run_speed(cases, resumed, budget=0.01)
    assert set(calls) == {"second"}  # the finished case was not rerun
    assert [r["name"] for r in resumed.rows] == ["first", "second"]
    assert ResultStore(tmp_path, "full").rows == []  # another mode starts afresh


def test_a_fresh_run_resumes_no_section_of_an_earlier_one(tmp_path):
    ResultStore(tmp_path, "full").save_section("coldstart", {"mode": "full", "results": {"a": 1}})
    assert ResultStore(tmp_path, "full").section("coldstart")["results"] == {"a": 1}
    fresh = ResultStore(tmp_path, "full", fresh=True)
    assert fresh.section("coldstart") is None
    fresh.save_section("coldstart", {"mode": "full", "results": {"b": 2}})
    assert fresh.section("coldstart")["results"] == {"b": 2}


def test_cases_timed_together_take_turns(tmp_path, monkeypatch):
    calls = []
    first, alone, second = (fake_case(name, calls) for name in ("first", "alone", "second"))
    monkeypatch.setattr(workloads, "TIMED_TOGETHER", ((first.key, second.key),))
    assert [[c.key for c in g] for g in workloads.timed_groups([first, alone, second])] == \
        [[first.key, second.key], [alone.key]]
    store = ResultStore(tmp_path, "quick")
    speed.run_speed([first, alone, second], store, budget=0.01)
    assert [r["name"] for r in store.rows] == ["first", "second", "alone"]
    together = [name for name in calls if name != "alone"]
    switches = sum(a != b for a, b in zip(together, together[1:]))
    assert switches >= 3, "the grouped cases were timed one after the other, not in turns"
    assert calls.index("alone") > max(i for i, name in enumerate(calls) if name != "alone")


def test_each_ratio_between_cases_is_timed_together():
    keys = {case.key for case in workloads.suite()}
    pairs = {frozenset(group) for group in workloads.TIMED_TOGETHER}
    for label, num_key, _, den_key, _, _, _ in tables.TARGETS:
        assert {num_key, den_key} <= keys, label
        if num_key != den_key:
            assert frozenset((num_key, den_key)) in pairs, label


def test_slow_backend_case_is_reported_not_dropped(monkeypatch):
    monkeypatch.setattr(speed, "SLOW_BACKENDS", ("numpy",))
    guard = speed.SlowBackendGuard()
    guard.rates["numpy"] = 1.0  # one FLOP per second: everything is too slow
    [row] = speed.run_case(fake_case(), ["numpy"], guard, budget=0.01)
    assert row["status"] == speed.TOO_SLOW and "estimated" in row["note"]


def test_a_broken_kernel_is_a_row_not_a_crash():
    def broken(raw, dtype):
        return lambda: 1 / 0

    case = workloads.Case("kernel", "broken", "1", "float64", 1.0, broken)
    [row] = speed.run_case(case, ["numpy"], speed.SlowBackendGuard(), budget=0.01)
    assert row["status"] == "error" and "ZeroDivisionError" in row["note"]


def test_targets_cover_every_compiled_backend():
    rows = []
    for key, backend, seconds in [
            ("step/spiral/2-100-3 b300 adam/f32", "numpy", 1.0),
            ("step/spiral/2-100-3 b300 adam/f32", "newcomer", 0.05),
            ("step/xor/2-2-1 b4 adam/f32", "numpy", 1.0),
            ("step/xor/2-2-1 b4 adam/f32", "newcomer", 0.1)]:
        rows.append(dict(key=key, group="step", name=key.split("/")[1], size="", dtype="float32",
                         x=0, flops=1.0, backend=backend, status="ok", median_s=seconds))
    status = {"python": (False, "nope"), "numpy": (True, ""), "newcomer": (True, "")}
    result = tables.targets(tables.frame(rows), status).set_index("target")
    assert set(result.backend) == {"newcomer"}
    verdicts = result.verdict.tolist()
    assert verdicts == ["PASS", "FAIL"] + ["not measured"] * (len(tables.TARGETS) - 2)
    assert "20x (target >= 10): PASS" in result.line.iloc[0]


def test_wide_table_lists_unavailable_and_too_slow():
    rows = [dict(key="k", group="kernel", name="matmul", size="2", dtype="float32", x=2,
                 flops=1.0, backend=b, status=s, median_s=t)
            for b, s, t in (("numpy", "ok", 1e-6), ("python", speed.TOO_SLOW, np.nan))]
    status = {"python": (True, ""), "numpy": (True, ""), "numba": (False, "not built")}
    table = tables.wide(tables.frame(rows), list(status), status, fmt=tables.seconds)
    assert table.loc[0, ["python", "numpy", "numba"]].tolist() == [
        speed.TOO_SLOW, "1 µs", "unavailable"]
    assert tables.markdown(table).count("\n") == 2


@pytest.fixture
def newcomer(monkeypatch):
    """A backend registered only here (NumPy's kernels plus a ``matmul_blocked``)."""
    from fastmlp.backends import numpy_backend

    module = types.ModuleType("fastmlp_newcomer_backend")
    module.__dict__.update({k: v for k, v in vars(numpy_backend).items()
                            if not k.startswith("__")})
    module.matmul_blocked = numpy_backend.matmul
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(backends.MODULES, "newcomer", module.__name__)
    monkeypatch.setattr(backends, "_loaded", {})
    monkeypatch.setattr(backends, "_failed", {})
    return "newcomer"


def test_quick_report_writes_every_file_and_shows_a_new_backend(tmp_path, monkeypatch,
                                                                 newcomer):
    path = report.run(tmp_path / "r", quick=True, progress=False, only=[newcomer])
    names = {p.name for p in path.parent.iterdir()}
    assert {"report.md", "details.md", "report.html", "results.csv", "results.json",
            "convergence.json", "seed.json", "epochs.json", "machine.json", "summary.png",
            "time_vs_size.png", "speedup.png", "roofline.png", "loss_per_batch.png",
            "seed_xor.png", "seed_overfitting.png", "seed_optimizers.png"} <= names
    text = path.read_text()
    assert text.index("## The answer") < text.index("## Speed targets") \
        < text.index("## The seed, reproduced") < text.index("## Convergence")
    assert len(text.splitlines()) < 250  # the long tables are on the second page
    details = (path.parent / "details.md").read_text()
    assert "## Kernels" in details and "![roofline]" in details and "## Kernels" not in text
    assert "| newcomer |" in text  # the new backend has its row in the answer's tables
    frame = pd.read_csv(path.parent / "results.csv")
    assert {"numpy", newcomer} <= set(frame.backend) and (frame.status == "ok").any()
    assert "newcomer: spiral 2-100-3 b300 f32 Adam step, speedup over numpy" in text
    # numpy's kernels under another name: 1x, short of every speedup, and said why
    assert ("- newcomer: spiral 2-100-3 b300 f32 Adam step, speedup over numpy: " in text
            and "no compiled backend meets it on this machine" in text)
    assert "kernel/matmul_blocked/64x64x64/f32" in set(frame[frame.backend == newcomer].key)
    assert all("| newcomer |" in table or "newcomer" in table.splitlines()[0]
               for table in details.split("\n\n") if table.startswith("| name |"))


def tiny_mnist(folder, n_train=256, n_test=32):
    """A small ``mnist.npz`` of MNIST's shapes, as Keras saves it."""
    rng = np.random.default_rng(0)
    split = {f"x_{s}": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
             for s, n in (("train", n_train), ("test", n_test))}
    split.update({f"y_{s}": rng.integers(0, 10, n).astype(np.uint8)
                  for s, n in (("train", n_train), ("test", n_test))})
    np.savez(folder / "mnist.npz", **split)


@pytest.mark.parametrize("present", [True, False])
def test_mnist_convergence_runs_when_the_files_are_there(tmp_path, monkeypatch, present):
    if present:
        tiny_mnist(tmp_path)
    monkeypatch.setenv("FASTMLP_MNIST", str(tmp_path / ("" if present else "nowhere")))
    monkeypatch.setenv("HOME", str(tmp_path))  # no real MNIST in the usual caches
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "_data_cache", {})
    jobs = dict(report.convergence_jobs(quick=True, backend="numpy"))
    adam = jobs["mnist/adam"]()
    if present:
        assert adam["dataset"] == "mnist" and 0 <= adam["test_accuracy"] <= 1
        assert len(adam["batch_losses"]) == 2 and not adam["passed"]  # 2 batches: no 97.5%
    else:
        assert "no MNIST files" in adam["not_run"] and "nowhere" in adam["not_run"]


def test_repeated_targets_take_the_median_and_show_the_range():
    def run(seconds):
        rows = [dict(key="step/xor/2-2-1 b4 adam/f32", group="step", name="xor", size="",
                     dtype="float32", x=0, flops=1.0, backend=b, status="ok", median_s=t)
                for b, t in (("numpy", 1.0), ("newcomer", seconds))]
        return tables.targets(tables.frame(rows), {"numpy": (True, ""), "newcomer": (True, "")})

    result = tables.repeated_targets([run(1 / 20), run(1 / 40), run(1 / 35)])
    xor = result[result.target.str.startswith("XOR")].iloc[0]
    assert xor.value == pytest.approx(35) and xor.verdict == "PASS"
    assert "range 20x-40x over 3 runs" in xor.line
    assert result[result.target.str.startswith("spiral")].verdict.iloc[0] == "not measured"


SPIRAL_STEP = "step/spiral/2-100-3 b300 adam/f32"
MACHINE = dict(cpu="Some CPU", product_paths=dict(kind="avx2"),
               blas=[dict(internal_api="openblas", version="0.3.30", architecture="Haswell")])


def spiral_targets(times):
    """The targets of a run where the spiral step takes ``times[backend]`` = (q1, median,
    q3) seconds, numpy's (1, 1, 1)."""
    rows = [dict(key=SPIRAL_STEP, group="step", name="spiral", size="", dtype="float32", x=0,
                 flops=1.0, backend=b, status="ok", q1_s=q1, median_s=m, q3_s=q3)
            for b, (q1, m, q3) in dict(numpy=(1.0, 1.0, 1.0), **times).items()]
    status = {b: (True, "") for b in ["numpy", *times]}
    frame = tables.targets(tables.frame(rows), status)
    return frame[frame.target.str.startswith("spiral 2-100-3 b300 f32 Adam step")]


def test_a_target_a_twin_meets_blames_the_backend_not_the_machine():
    frame = spiral_targets(dict(slow=(0.124, 0.125, 0.126), fast=(0.08, 0.08, 0.08)))
    [line] = tables.shortfalls(frame, MACHINE)
    assert line.startswith("slow: spiral") and "fast meets it here (12.5x)" in line
    assert "own code falls short, not the machine" in line and "spread" not in line


def test_a_twin_meeting_a_target_within_the_spread_blames_no_one():
    frame = spiral_targets(dict(noisy=(0.09, 0.105, 0.11), fast=(0.08, 0.08, 0.08)))
    [line] = tables.shortfalls(frame, MACHINE)
    assert "within this run's spread" in line and line.endswith("fast meets it here (12.5x)")


def test_a_target_no_backend_meets_names_the_machine_and_the_spread():
    frame = spiral_targets(dict(a=(0.09, 0.105, 0.11), b=(0.2, 0.2, 0.2)))
    lines = tables.shortfalls(frame, MACHINE, drift=0.8)
    assert [line.split(":")[0] for line in lines] == ["a", "b"]
    assert "spread (the cases' quartiles give 9.09x-11.1x)" in lines[0]
    assert "spread" not in lines[1]  # 4.5x-5.5x: short whatever the noise
    for line in lines:
        assert ("no compiled backend meets it on this machine (Some CPU, avx2 kernels, "
                "OpenBLAS's Haswell kernels)") in line
        assert "reference GEMM ran at 80% of its start rate" in line


def test_targets_met_need_no_reason():
    assert tables.shortfalls(spiral_targets(dict(fast=(0.08, 0.08, 0.08))), MACHINE) == []


def test_repeated_targets_give_their_range_as_the_spread():
    runs = [spiral_targets(dict(a=(t, t, t))) for t in (0.09, 0.11, 0.12)]
    [line] = tables.shortfalls(tables.repeated_targets(runs))
    assert "spread (the repeats range 8.33x-11.1x)" in line


def test_targets_command_rejects_a_bad_repeat(capsys):
    with pytest.raises(SystemExit):
        cli.main(["targets", "--repeat", "0"])
    assert "whole number >= 1" in capsys.readouterr().err


def test_versions_name_the_cython_that_built_the_extension():
    from fastmlp.backends.cython import _kernels
    from fastmlp.harness import machine

    assert machine.versions()["cython"] == f"{_kernels.CYTHON_VERSION} (built the extension)"
    assert _kernels.CYTHON_VERSION[0].isdigit()


def test_the_machine_section_names_each_steps_kernels_and_product_paths(monkeypatch):
    """The report says which path each step took on this machine kind: the spiral the
    narrow pair's kernels, the others their layers' products, as tuning chooses them."""
    from fastmlp.backends import tuning
    from fastmlp.harness import machine, render

    paths = machine.product_paths()
    assert paths["step_kernels"]["spiral"] == "the narrow pair of 2 inputs and 3 classes"
    assert {paths["step_kernels"][n] for n in ("xor", "digits", "mnist")} == {"layer by layer"}
    line = render._paths_md(paths)
    assert f"machine kind {tuning.KIND}: TINY_GEMM {tuning.TINY_GEMM}," in line
    expected = tuning.layer_paths((64, 100, 10), 32)
    assert ("digits: layer by layer, " + " | ".join(
        ", ".join(f"{p} {path}" for p, path in layer.items()) for layer in expected)) in line
    assert "spiral: the narrow pair of 2 inputs and 3 classes (layer by layer: XW narrow_k" in line
    monkeypatch.setattr(tuning, "NARROW_K", 1)  # two inputs are then too many for the pair
    assert machine.product_paths()["step_kernels"]["spiral"] == "layer by layer"
    assert render._paths_md({}) == ""  # a machine.json from before: no line


def test_cold_start_covers_every_network_in_both_dtypes(monkeypatch):
    calls = []
    monkeypatch.setattr(speed, "cold_start", lambda *a, **kw: calls.append((a, kw)) or {})
    status = {"numpy": (True, ""), "numba": (True, ""), "cython": (True, "")}
    cold_jobs, warm_jobs = report._cold_start_jobs(status)
    jobs = cold_jobs + warm_jobs
    for _, job in cold_jobs:
        job()
    assert all(not kw for _, kw in calls)  # the cold rows (run beside the compile) alone
    for _, job in warm_jobs:
        job()
    cold = {(b, n, d) for (b, n, d), kw in calls if not kw}
    warm = {(b, n, d) for (b, n, d), kw in calls if kw == {"fresh_cache": False}}
    every = {(n, d) for n in ("spiral", "digits", "mnist") for d in ("float32", "float64")}
    assert cold == {(b, n, d) for b in ("numpy", "numba", "cython") for n, d in every}
    assert warm == {("numba", n, d) for n, d in every}
    assert len({key for key, _ in jobs}) == len(jobs) == len(cold) + len(warm)


def test_the_commands_help_names_every_subcommand():
    p = cli.parser()
    commands = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"report", "bench", "targets", "warmup"}
    for command in commands:
        assert f"``fastmlp {command}``" in p.description
