"""fastmlp.threads: the thread settings fastmlp makes at import, before NumPy loads, and
never over the user's own."""
import json
import os
import subprocess
import sys

import pytest

from fastmlp import threads

NAMES = sorted(threads.DEFAULTS)
#: Every variable of the knobs fastmlp sets (a user's setting of any of them is kept).
KNOBS = sorted({n for names in threads.SAME_KNOB.values() for n in names})

# Records each setting as it stands when NumPy starts loading (its OpenBLAS reads the
# environment then), then imports fastmlp and prints what it saw and what it set.
PROBE = """
import json, os, sys
seen = {}
class Finder:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy" and not seen:
            seen.update({n: os.environ.get(n) for n in NAMES})
sys.meta_path.insert(0, Finder())
import fastmlp
from fastmlp import threads
print(json.dumps(dict(at_numpy=seen, now={n: os.environ.get(n) for n in NAMES},
                      set_by=threads.SET_BY_FASTMLP, numpy_first=threads.NUMPY_FIRST)))
"""


def probe(**env):
    """Run PROBE in a fresh interpreter whose environment has none of the settings but ``env``."""
    environ = {k: v for k, v in os.environ.items() if k not in KNOBS and k != threads.SWITCH}
    environ.update(env)
    code = f"NAMES = {KNOBS!r}\n" + PROBE
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_defaults_are_set_before_numpy_loads():
    seen = probe()
    unset = {name: None for name in KNOBS if name not in threads.DEFAULTS}
    assert seen["at_numpy"] == dict(threads.DEFAULTS, **unset)
    assert seen["now"] == dict(threads.DEFAULTS, **unset)
    assert sorted(seen["set_by"]) == NAMES
    assert seen["numpy_first"] is False


@pytest.mark.parametrize("name, value, kept_off", [
    ("OMP_WAIT_POLICY", "ACTIVE", "GOMP_SPINCOUNT"), ("GOMP_SPINCOUNT", "50", "GOMP_SPINCOUNT"),
    ("OPENBLAS_THREAD_TIMEOUT", "30", "OPENBLAS_THREAD_TIMEOUT")])
def test_a_users_own_setting_is_kept(name, value, kept_off):
    seen = probe(**{name: value})
    assert seen["at_numpy"][name] == seen["now"][name] == value
    assert kept_off not in seen["set_by"]
    assert seen["now"][kept_off] == (value if kept_off == name else None)
    assert sorted(seen["set_by"]) == [n for n in NAMES if n != kept_off]


def test_the_switch_sets_nothing():
    seen = probe(**{threads.SWITCH: "0"})
    assert seen["now"] == {name: None for name in KNOBS}
    assert seen["set_by"] == []


@pytest.mark.parametrize("environ, expected", [
    ({}, NAMES),
    ({"OPENBLAS_THREAD_TIMEOUT": "30"}, ["GOMP_SPINCOUNT"]),
    ({"OMP_WAIT_POLICY": "passive"}, ["OPENBLAS_THREAD_TIMEOUT"]),
    ({"GOMP_SPINCOUNT": "0", "OPENBLAS_THREAD_TIMEOUT": "8"}, []),
    ({threads.SWITCH: "0"}, []),
], ids=["none", "timeout-set", "policy-set", "both-set", "switched-off"])
def test_apply_defaults(environ, expected):
    before = dict(environ)
    assert sorted(threads.apply_defaults(environ)) == expected
    assert {k: v for k, v in environ.items() if k in before} == before  # the user's kept
    assert all(environ[name] == threads.DEFAULTS[name] for name in expected)


def test_settings_and_pools_are_described():
    lines = threads.describe_lines()
    assert [line for line in lines if line.startswith("setting:")] == [
        f"setting: {name}={value} ({who})" for name, value, who in threads.settings()]
    assert any(line.startswith("numba threading layer:") for line in lines)


def test_numpy_imported_first_is_said_once_in_the_log():
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "import numpy\nimport fastmlp\nimport importlib; importlib.reload(fastmlp)\n"
            "from fastmlp import threads; print(threads.NUMPY_FIRST)")
    environ = {k: v for k, v in os.environ.items() if k not in KNOBS and k != threads.SWITCH}
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True"]
    assert done.stderr.count("numpy was imported before fastmlp") == 1


@pytest.mark.parametrize("environ, numpy_first, expected", [
    (dict(threads.DEFAULTS), False, True),
    ({"GOMP_SPINCOUNT": "0", "OPENBLAS_THREAD_TIMEOUT": "4"}, False, True),
    ({"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}, False, True),
    ({"OMP_WAIT_POLICY": "passive", "GOMP_SPINCOUNT": "300000",
      "OPENBLAS_THREAD_TIMEOUT": "4"}, False, False),
    ({"GOMP_SPINCOUNT": "2000"}, False, False),
    ({"GOMP_SPINCOUNT": "2000", "OPENBLAS_THREAD_TIMEOUT": "28"}, False, False),
    ({"GOMP_SPINCOUNT": "lots", "OPENBLAS_THREAD_TIMEOUT": "4"}, False, False),
    ({}, False, False),
], ids=["defaults", "less", "passive", "passive-but-spincount", "no-timeout", "long-timeout",
        "unreadable", "runtimes-own"])
def test_pools_sleep_at_once_only_under_short_spins(environ, numpy_first, expected):
    assert threads.pools_sleep_at_once(environ, numpy_first) is expected


def test_numpy_loaded_before_fastmlp_set_the_timeout_spins_long(monkeypatch):
    monkeypatch.setattr(threads, "SET_BY_FASTMLP", ["OPENBLAS_THREAD_TIMEOUT"])
    assert not threads.pools_sleep_at_once(dict(threads.DEFAULTS), numpy_first=True)
    monkeypatch.setattr(threads, "SET_BY_FASTMLP", [])  # the user's own: NumPy saw it
    assert threads.pools_sleep_at_once(dict(threads.DEFAULTS), numpy_first=True)


@pytest.mark.parametrize("short", [True, False])
def test_interleave_pauses_as_long_as_the_pools_spin(monkeypatch, short):
    from fastmlp.harness import timing

    monkeypatch.setattr(threads, "pools_sleep_at_once", lambda: short)
    pauses = []
    monkeypatch.setattr(timing.time, "sleep", pauses.append)
    slow = [timing.Timer(lambda: None, budget=1e-3, min_rounds=2) for _ in range(2)]
    for timer in slow:
        timer.samples, timer.first = [1e-3], 1e-3  # threaded-size calls: a pause each turn
    timing.interleave(slow, max_rounds=3)
    assert pauses and set(pauses) == {timing.SHORT_SETTLE_S if short else timing.SETTLE_S}
