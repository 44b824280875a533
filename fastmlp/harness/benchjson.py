"""``fastmlp bench --json PATH``: a run in pytest-benchmark's JSON format.

Tools that read pytest-benchmark files (github-action-benchmark's ``tool:
pytest``, Bencher's ``json`` adapter, ``pytest-benchmark compare``) take
fastmlp's cases as they are: one benchmark per case and backend, its ``data``
the per-call seconds of every round of every timing process, its statistics
computed by pytest-benchmark's own ``Stats``.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from fastmlp.harness.store import dumps, write_atomic


def document(processes, comparison=None, budget=None):
    """The pytest-benchmark document of one side's ``processes`` (worker documents);
    ``comparison``: ``gate.compare``'s result, whose ratio and verdict each case carries
    in ``extra_info``."""
    import pytest_benchmark
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info
    from pytest_benchmark.stats import Stats
    from pytest_benchmark.utils import get_commit_info

    verdicts = {r["case"]: r for r in (comparison or {}).get("rows", [])}
    benchmarks = []
    for case in dict.fromkeys(k for p in processes for k in p["cases"]):
        entries = [p["cases"][case] for p in processes if case in p["cases"]]
        timings = Stats()
        for entry in entries:
            for seconds in entry["samples"]:
                timings.update(seconds)
        key, backend = case.rsplit("@", 1)
        extra = dict(case=key, backend=backend, processes=len(entries),
                     alloc_b=min((e["alloc_b"] for e in entries if "alloc_b" in e), default=None))
        if case in verdicts:
            extra.update({f: verdicts[case][f]
                          for f in ("ratio", "low", "high", "verdict", "fails")})
        benchmarks.append(dict(
            group=key, name=case, fullname=f"fastmlp bench::{case}", params={"backend": backend},
            param=backend, extra_info=extra,
            options=dict(timer="perf_counter", max_time=budget, min_rounds=5, disable_gc=False,
                         warmup=True, processes=len(entries)),
            stats=dict(timings.as_dict(), data=timings.data, iterations=entries[0]["inner"])))
    return dict(machine_info=pytest_benchmark_generate_machine_info(),
                commit_info=get_commit_info(), benchmarks=benchmarks,
                datetime=datetime.now(timezone.utc).isoformat(),
                version=pytest_benchmark.__version__)


def write(path, processes, comparison=None, budget=None):
    write_atomic(path, json.dumps(dumps(document(processes, comparison, budget)), indent=1))
    return path
