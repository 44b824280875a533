"""The ``fit/...`` cases of the speed suite: listed, timed per batch together with their
step, and stated in the targets."""
import pandas as pd
import pytest

from fastmlp.harness import speed, tables, workloads


def test_fit_cases_are_listed_and_timed_together_with_their_step():
    for quick in (False, True):
        cases = workloads.suite(quick)
        keys = [c.key for c in cases]
        groups = {c.key: [g.key for g in group] for group in workloads.timed_groups(cases)
                  for c in group}
        fits = [f for f in workloads.FITS if workloads.fit_keys(*f[:2])[0] in keys]
        assert len(fits) == (2 if quick else len(workloads.FITS))
        for name, batch, _ in fits:
            fit, step = workloads.fit_keys(name, batch)
            assert step in keys and groups[fit] == groups[step] and len(groups[fit]) >= 2
    assert workloads.fit_keys("spiral", 300)[1] == "step/spiral/2-100-3 b300 adam/f32"
    assert workloads.fit_keys("mnist", 256)[1].startswith("fit-step/mnist/")  # step: RMSprop


def test_a_fit_case_times_fit_per_batch():
    case = next(c for c in workloads.suite(quick=True) if c.group == "fit" and c.name == "xor")
    assert case.steps == 100 and case.flops == workloads.step_flops((2, 2, 1), 4)
    [row] = speed.run_case(case, ["numpy"], speed.SlowBackendGuard(), budget=0.01)
    assert row["status"] == "ok" and row["steps"] == 100
    assert speed.per_step(dict(median_s=1.0, min_s=0.5, first_call_s=2.0, rounds=7), 4) == \
        dict(median_s=0.25, min_s=0.125, first_call_s=2.0, rounds=7)


def test_the_targets_include_fit_and_compute_fit_over_step():
    labels = list(tables.targets(pd.DataFrame(columns=["key", "backend", "status"]),
                                 {"numba": (True, "")}).target)
    assert "spiral 2-100-3 b300 f32 Adam fit, speedup over numpy" in labels
    assert "XOR 2-2-1 b4 f32 Adam fit, speedup over numpy" in labels
    assert sum(label.endswith("fit per batch / step") for label in labels) == len(workloads.FITS)
    fit, step = workloads.fit_keys("digits", 32)
    rows = [dict(key=k, group=k.split("/")[0], name="digits", size="", dtype="float32", x=0,
                 flops=1.0, backend="numba", status="ok", median_s=t)
            for k, t in ((fit, 1.2e-4), (step, 1e-4))]
    result = tables.targets(tables.frame(rows), {"numba": (True, "")}).set_index("target")
    line = result.loc["digits 64-100-10 b32 f32 Adam, fit per batch / step"]
    assert line.value == pytest.approx(1.2) and line.verdict == "FAIL"
    table = tables.fit_vs_step(tables.frame(rows), ["numba"])
    assert table.to_dict("records") == [{
        "workload": "digits/64-100-10 b32 adam/f32", "epochs a call": 3, "backend": "numba",
        "step": "100 µs", "fit per batch": "120 µs", "fit / step": "1.2x", "fit x numpy": "-"}]


def test_targets_not_measured_share_one_line():
    rows = [dict(key=workloads.fit_keys("xor", 4)[0], group="fit", name="xor", size="",
                 dtype="float32", x=0, flops=1.0, backend=b, status="ok", median_s=t)
            for b, t in (("numpy", 1.0), ("numba", 0.01), ("cython", 0.1))]
    status = {"numpy": (True, ""), "numba": (True, ""), "cython": (True, "")}
    lines = tables.target_lines(tables.targets(tables.frame(rows), status)).splitlines()
    assert lines[:2] == [
        "numba: XOR 2-2-1 b4 f32 Adam fit, speedup over numpy = 100x (target >= 30): PASS",
        "cython: XOR 2-2-1 b4 f32 Adam fit, speedup over numpy = 10x (target >= 30): FAIL"]
    assert len(lines) == 3 and lines[2].count("spiral 2-100-3 b300 f32 Adam fit") == 1
    assert tables.target_lines(tables.targets(tables.frame(rows), {})) == \
        "no compiled backend available"
