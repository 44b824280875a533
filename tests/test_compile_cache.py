"""The Numba backend's first use: the compile notice, ``fastmlp warmup`` and the disk cache.

Each test runs fresh processes on a cache directory of its own, on the cheapest paths (the
narrow-pair step of a 1-8-2 network, one update kernel): a cold compile, not a warm one,
is what they are about. Times are compared as ratios between processes, never to a bound.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTICE = "compiling numba kernels"

STEPS = r"""
import json, sys, time
import numpy as np
from fastmlp import MLP
times = []
for sizes in json.loads(sys.argv[1]):
    X = np.random.default_rng(0).random((64, sizes[0])).astype(np.float32)
    y = np.arange(64) % sizes[-1]
    model = MLP(sizes, backend="numba", dtype="float32")
    t0 = time.perf_counter()
    model.make_step(X, y, "adam")()  # make_step compiles (it binds the kernel to the types)
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""

FITS = r"""
import numpy as np
from fastmlp import MLP
X = np.random.default_rng(0).random((64, 1)).astype(np.float32)
model = MLP([1, 8, 2], backend="numba", dtype="float32")
for batch in (32, 60):  # every batch of the narrow pair; a last batch of 4, too short for it
    model.fit(X, np.arange(64) % 2, batch_size=batch, epochs=1)
print("[]")
"""

UPDATE = r"""
import json
import numpy as np
from fastmlp import backends
from fastmlp.backends.numba import updates
p = np.ones(8, np.float32)
backends.get("numba").sgd_update(p, p.copy(), p.copy(), 0.1, 0.0, 0.0, False, 0.0)
print(json.dumps(dict(hits=sum(updates.sgd_update.stats.cache_hits.values()),
                      misses=sum(updates.sgd_update.stats.cache_misses.values()))))
"""


def python(code, *args, env=None, user=None, cwd=None):
    """Run ``code`` in a fresh interpreter; (stdout's last line as JSON, stderr)."""
    command = [sys.executable, "-c", code, *args]
    if user is not None:  # drop root: it writes anywhere, so a read-only folder is not one
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600,
                          cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def cache_env(cache):
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache))


def test_notice_once_and_warmup_makes_the_first_step_fast(tmp_path):
    cold_cache, warm_cache = tmp_path / "cold", tmp_path / "warm"
    (cold_first, _), stderr = python(STEPS, json.dumps([[1, 8, 2], [2, 8, 3]]),
                                     env=cache_env(cold_cache))
    notices = [line for line in stderr.splitlines() if NOTICE in line]
    assert len(notices) == 1, stderr  # two steps, each compiling its own kernels: one line
    assert "float32" in notices[0] and str(cold_cache) in notices[0]

    warm = subprocess.run([sys.executable, "-m", "fastmlp", "warmup", "--dtypes", "float32",
                           "-k", "narrow pair 1-2", "--no-progress"], env=cache_env(warm_cache),
                          capture_output=True, text=True, timeout=600)
    assert warm.returncode == 0 and "warmed 1 kernel paths" in warm.stdout, warm.stderr
    (warm_first,), stderr = python(STEPS, json.dumps([[1, 8, 2]]), env=cache_env(warm_cache))
    assert NOTICE not in stderr  # everything came from the cache: nothing compiled
    assert cold_first > 5 * warm_first, (cold_first, warm_first)
    _, stderr = python(FITS, env=cache_env(warm_cache))
    assert NOTICE not in stderr  # both kinds of narrow-pair epoch were warmed


def read_only_copy(tmp_path):
    """The fastmlp package copied under tmp_path without its caches, then made read-only."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "fastmlp", site / "fastmlp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    for path in [site, *site.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return site


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_warmup_path_runs_on_the_reference_backend(dtype):
    """Each path's calls are valid ones (the numpy backend compiles nothing, so this is
    quick): a kernel's arguments built from its declared shapes, every network entry."""
    from fastmlp import warmup

    for label, task in warmup.tasks("numpy", dtype):
        task()


BUILD_CASE = r"""
import sys
from fastmlp.harness import workloads
case = next(c for c in workloads.suite() if c.key == sys.argv[1])
case.build("numba")()
print("[]")
"""


def test_the_reports_compile_beside_fills_the_cache_for_the_speed_cases(tmp_path, monkeypatch):
    """``speed.precompiled``: the second process compiles a speed case's kernels, so the
    speed phase's own build of that case compiles nothing; a block that raises stops it."""
    from fastmlp.harness import speed

    key = "kernel/matmul/32x32x32/f32"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    with speed.precompiled(["numba", "numpy"], keys=[key]) as children:
        assert len(children) == 1  # only the JIT backend compiles
    assert children[0].returncode == 0
    _, stderr = python(BUILD_CASE, key, env=cache_env(tmp_path / "cache"))
    assert NOTICE not in stderr
    with pytest.raises(KeyboardInterrupt):
        with speed.precompiled(["numba"]) as children:
            raise KeyboardInterrupt  # the whole suite's compile: minutes, were it let run
    assert children[0].returncode is not None and children[0].returncode != 0


@pytest.fixture
def open_tmp():
    """A temporary folder every user may enter (pytest's tmp_path is under a 0700 one)."""
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        yield Path(folder)
        for path in Path(folder).rglob("*"):  # the read-only copy: writable again, to delete
            path.chmod(0o755)


def test_a_read_only_install_caches_in_the_user_cache_dir(open_tmp):
    site, home = read_only_copy(open_tmp), open_tmp / "home"
    home.mkdir()
    user = None
    if os.geteuid() == 0:  # root ignores permissions: run as nobody, if that can be done
        if shutil.which("setpriv") is None:
            pytest.fail("running as root without setpriv: cannot test a read-only install")
        user = 65534
        os.chown(home, user, user)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "XDG_"))}
    env.update(PYTHONPATH=str(site), HOME=str(home))
    first, _ = python(UPDATE, env=env, user=user, cwd=home)
    second, _ = python(UPDATE, env=env, user=user, cwd=home)
    assert first == {"hits": 0, "misses": 1}
    assert second == {"hits": 1, "misses": 0}  # the second process loaded it from disk
    assert not list(site.rglob("*.nbi"))  # not in the read-only package...
    assert list((home / ".cache" / "numba").rglob("*.nbi"))  # ... in the user's cache dir


def test_an_edit_of_another_backend_module_recompiles_a_cached_kernel(tmp_path):
    # Numba's own stamp hashes the kernel's file only: updates.py unchanged, an edited
    # tuning.py (which it may call) would load the old machine code.
    site = tmp_path / "site"
    shutil.copytree(ROOT / "fastmlp", site / "fastmlp",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    env = dict(cache_env(tmp_path / "cache"), PYTHONPATH=str(site))
    run = partial(python, UPDATE, env=env, cwd=tmp_path)  # cwd: not this checkout's fastmlp
    assert run()[0] == {"hits": 0, "misses": 1}
    assert run()[0] == {"hits": 1, "misses": 0}
    with open(site / "fastmlp" / "backends" / "tuning.py", "a") as tuning:
        tuning.write("\n# an edit\n")
    assert run()[0] == {"hits": 0, "misses": 1}


def test_every_numba_kernel_caches_with_the_whole_backend_stamp():
    from fastmlp.backends import contract, numba as numba_backend
    from fastmlp.backends.numba.intrinsics import WholeBackendStamp

    for name in contract.KERNEL_NAMES:
        dispatcher = getattr(numba_backend, name)
        if hasattr(dispatcher, "_cache"):  # the composed ones are Python functions
            assert isinstance(dispatcher._cache._impl._locator, WholeBackendStamp), name


def test_the_notice_lets_a_users_own_functions_compile():
    """The notice hears every compile in the process: a function made by ``exec`` (its
    ``__module__`` is None) and one of the user's own module must still compile, quietly."""
    code = r"""
import json, logging
from numba import njit
import fastmlp.backends.numba  # registers the notice
namespace = {"__name__": None}
exec("def twice(x):\n    return 2 * x", namespace)
print(json.dumps([njit(namespace["twice"])(21), njit(lambda x: x + 1)(41)]))
"""
    (values, stderr) = python(code, cwd=ROOT)
    assert values == [42, 42] and NOTICE not in stderr, stderr
