"""pytest-benchmark suite over backend x workload x size x dtype.

The cases are ``fastmlp.harness.workloads`` (the same as ``fastmlp report``);
each benchmark's group is one case, so a group's rows compare the backends.
Use ``--fastmlp-quick`` for the handful of quick cases, ``-k numba`` or
``-k step`` to select. pytest-benchmark's own options work as usual:
``--benchmark-save=NAME``, ``--benchmark-compare``,
``--benchmark-compare-fail=median:15%``.
"""
import pytest

from fastmlp import backends
from fastmlp.harness import speed, workloads


def pytest_addoption(parser):
    parser.addoption("--fastmlp-quick", action="store_true",
                     help="benchmark the quick suite only (seconds)")


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    quick = metafunc.config.getoption("--fastmlp-quick")
    groups = getattr(metafunc.module, "GROUPS")
    cases = [c for c in workloads.suite(quick) if c.group in groups]
    params = [pytest.param(c, b, id=f"{c.key.replace(' ', '_')}-{b}")
              for c in cases for b in backends.MODULES if not c.only or b in c.only]
    metafunc.parametrize("case,backend_name", params)


_guard = speed.SlowBackendGuard()


@pytest.fixture
def run_case(benchmark):
    """Benchmark ``case`` on ``backend_name``, or skip with the reason it cannot run."""

    def run(case, backend_name):
        ok, reason = backends.available()[backend_name]
        if not ok:
            pytest.skip(f"{backend_name} unavailable: {reason}")
        if not case.applies(backend_name):
            pytest.skip(f"{case.name} does not apply to {backend_name}")
        if _guard.too_slow(backend_name, case):
            pytest.skip(speed.TOO_SLOW)
        fn = case.build(backend_name)
        benchmark.group = case.key
        benchmark.extra_info.update(flops=case.flops, backend=backend_name, case=case.key)
        if backend_name in speed.SLOW_BACKENDS:  # up to 2 s a call: a few rounds are enough
            benchmark.pedantic(fn, rounds=3, iterations=1)
        else:
            benchmark(fn)
        if benchmark.stats is not None:
            median = benchmark.stats.stats.median
            benchmark.extra_info["gflops"] = case.flops / median / 1e9

    return run
