"""fastmlp.threads: the thread settings fastmlp makes at import, before NumPy loads, and
never over the user's own."""
import json
import os
import subprocess
import sys

import pytest

from fastmlp import threads

NAMES = sorted(threads.DEFAULTS)

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
    environ = {k: v for k, v in os.environ.items() if k not in NAMES and k != threads.SWITCH}
    environ.update(env)
    code = f"NAMES = {NAMES!r}\n" + PROBE
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_defaults_are_set_before_numpy_loads():
    seen = probe()
    assert seen["at_numpy"] == threads.DEFAULTS
    assert seen["now"] == threads.DEFAULTS
    assert sorted(seen["set_by"]) == NAMES
    assert seen["numpy_first"] is False


def test_a_users_own_setting_is_kept():
    seen = probe(OMP_WAIT_POLICY="ACTIVE")
    assert seen["at_numpy"]["OMP_WAIT_POLICY"] == "ACTIVE"
    assert seen["now"]["OMP_WAIT_POLICY"] == "ACTIVE"
    assert "OMP_WAIT_POLICY" not in seen["set_by"]
    assert seen["now"]["OPENBLAS_THREAD_TIMEOUT"] == threads.DEFAULTS["OPENBLAS_THREAD_TIMEOUT"]


def test_the_switch_sets_nothing():
    seen = probe(**{threads.SWITCH: "0"})
    assert seen["now"] == {name: None for name in NAMES}
    assert seen["set_by"] == []


@pytest.mark.parametrize("environ, expected", [
    ({}, NAMES),
    ({"OPENBLAS_THREAD_TIMEOUT": "30"}, ["OMP_WAIT_POLICY"]),
    ({"OMP_WAIT_POLICY": "active", "OPENBLAS_THREAD_TIMEOUT": "8"}, []),
    ({threads.SWITCH: "0"}, []),
], ids=["none", "timeout-set", "both-set", "switched-off"])
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
