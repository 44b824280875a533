"""Every product path of both compiled backends against NumPy, whichever paths this
machine's tuning table chooses, and the machine kinds that choose the thresholds."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import require, tolerance

from fastmlp.backends import cpu, tuning

LOOP, NARROW_K, NARROW_N, BLAS = (tuning.GEMM_PATHS.index(p) for p in
                                  ("loop", "narrow_k", "narrow_n", "blas"))
#: Per path, shapes (m, k, n, A transposed, B transposed) it applies to (its stack scratch
#: fits), in every layout the products of a layer pass it.
SHAPES = {
    LOOP: [(1, 1, 1, False, False), (8, 8, 8, False, False), (32, 100, 10, False, False),
           (100, 32, 10, True, False), (12, 12, 6, False, True), (5, 7, 9, True, True)],
    NARROW_K: [(300, 2, 100, False, False), (300, 3, 100, False, True), (7, 1, 9, False, False),
               (33, 4, 64, True, False), (5, 4, 3, False, False)],
    NARROW_N: [(300, 100, 3, False, False), (100, 300, 3, True, False), (7, 5, 1, False, False),
               (13, 9, 7, False, True), (33, 17, 5, True, True)],
    BLAS: [(32, 100, 10, False, False), (64, 32, 100, True, False), (32, 10, 100, False, True),
           (16, 100, 64, False, True)],  # B.T over STACK_ITEMS: not copied (tuning.COPY_BT)
}
CASES = [(path, shape) for path, shapes in SHAPES.items() for shape in shapes]


def operands(m, k, n, trans_a, trans_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    B = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    return (A.T if trans_a else A), (B.T if trans_b else B)


@pytest.mark.parametrize("path, shape", CASES,
                         ids=[f"{tuning.GEMM_PATHS[p]}-{'x'.join(map(str, s[:3]))}"
                              f"{'-At' * s[3]}{'-Bt' * s[4]}" for p, s in CASES])
def test_every_product_path_agrees_with_numpy(compiled_backend, dtype, path, shape):
    A, B = operands(*shape, dtype)
    out = np.full((shape[0], shape[2]), np.nan, dtype)
    compiled_backend.raw.matmul_path(A, B, out, path)
    np.testing.assert_allclose(out, A.astype(np.float64) @ B, **tolerance(dtype))


def test_the_kind_is_the_most_specific_one_the_features_allow():
    avx2 = {"sse2", "avx", "avx2", "fma"}
    assert cpu.kind_of(avx2) == "avx2"
    assert cpu.kind_of(avx2 | {"avx512f", "avx512bw", "avx512dq", "avx512vl"}) == "avx512"
    assert cpu.kind_of(avx2 | {"avx512f"}) == "avx2"  # Knights Landing: no SkylakeX kernels
    assert cpu.kind_of({"sse2", "avx"}) == "generic"
    assert cpu.kind_of(set()) == "generic"


def test_the_kind_comes_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert cpu.kind_of(cpu.cpu_features(str(cpuinfo))) == "avx2"
    assert cpu.cpu_features(str(tmp_path / "missing")) == set()


def test_machine_kind_takes_the_environment_and_rejects_unknown_kinds(monkeypatch):
    monkeypatch.setenv("FASTMLP_MACHINE_KIND", "avx2")
    assert cpu.machine_kind() == "avx2"
    monkeypatch.setenv("FASTMLP_MACHINE_KIND", "avx1024")
    with pytest.raises(ValueError, match="FASTMLP_MACHINE_KIND must be one of avx512, avx2"):
        cpu.machine_kind()
    monkeypatch.delenv("FASTMLP_MACHINE_KIND")
    assert cpu.machine_kind() == cpu.kind_of(cpu.cpu_features())


def in_fresh_process(code, kind, **env):
    """``code``'s JSON output, run in a fresh interpreter under FASTMLP_MACHINE_KIND=kind
    (none if None) and ``env``."""
    env = dict({k: v for k, v in os.environ.items() if k != "FASTMLP_MACHINE_KIND"}, **env)
    if kind is not None:
        env["FASTMLP_MACHINE_KIND"] = kind
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(run.stdout)


@pytest.mark.parametrize("kind", cpu.KINDS)
def test_each_kind_takes_its_thresholds_and_the_documented_paths(kind):
    code = ("import json; from fastmlp.backends import tuning as t; print(json.dumps("
            "[t.describe(), t.path_name(32, 100, 10), t.path_name(100, 32, 10, True),"
            " t.path_name(8, 8, 8), t.path_name(300, 2, 100), t.path_name(300, 100, 3)]))")
    described, digits_h_w2, digits_dw2, tiny, spiral_x_w1, spiral_h_w2 = \
        in_fresh_process(code, kind)
    assert described["kind"] == kind
    assert described["SMALL_GEMM"] == tuning.BY_KIND[kind]["SMALL_GEMM"]
    assert {k: described[k] for k in tuning.TILE_BY_KIND[kind]} == tuning.TILE_BY_KIND[kind]
    assert described["COPY_BT"] == tuning.BY_KIND[kind]["COPY_BT"]
    small = "loop" if tuning.BY_KIND[kind]["SMALL_GEMM"] > 32000 else "blas"
    assert (digits_h_w2, digits_dw2) == (small, small)
    assert (tiny, spiral_x_w1, spiral_h_w2) == ("loop", "narrow_k", "narrow_n")


def test_numba_caches_only_when_its_cache_key_decides_the_tuning_kind():
    """Numba keys a cache entry on the CPU's features, not on tuning.py's constants: under
    a kind set to other than the features', the kernels compile without the cache."""
    from fastmlp.backends.numba import intrinsics

    code = ("import json; from fastmlp.backends.numba import intrinsics as i; "
            "print(json.dumps([i.cache_kind(), i.CACHE]))")
    for kind in cpu.KINDS:
        cache_kind, cache = in_fresh_process(code, kind)
        assert cache_kind == intrinsics.cache_kind()
        assert cache == (kind == cache_kind and not intrinsics.FASTMATH), kind
    # NUMBA_CPU_FEATURES stands in for the host's (a cache shared across machines):
    # an empty list of features is the generic kind's.
    cache_kind, cache = in_fresh_process(code, None, NUMBA_CPU_FEATURES="")
    host_kind = cpu.kind_of(cpu.cpu_features())
    assert cache_kind == "generic" and cache == (host_kind == "generic" and not intrinsics.FASTMATH)
    if "FASTMLP_MACHINE_KIND" not in os.environ and "NUMBA_CPU_FEATURES" not in os.environ:
        assert intrinsics.CACHE == (not intrinsics.FASTMATH)  # the host decides both


def test_layer_paths_name_each_product_of_a_step():
    """The spiral's first layer runs the narrow loops, whatever the kind; the layer paths
    are gemm_path's (and narrow_k_applies's, for dW) at each product's shape."""
    first, second = tuning.layer_paths((2, 100, 3), 300)
    assert first == {"XW": "narrow_k", "dW": "weight_grads"}
    assert second == {"XW": tuning.path_name(300, 100, 3),
                      "dW": tuning.path_name(100, 300, 3, True), "dX": "narrow_k"}
    assert tuning.describe()["kind"] == tuning.KIND == cpu.machine_kind()


def test_a_cython_build_for_another_kind_says_so_on_import():
    require("cython")
    other = next(kind for kind in cpu.KINDS if kind != tuning.KIND)
    env = dict(os.environ, FASTMLP_MACHINE_KIND=other)
    run = subprocess.run([sys.executable, "-c", "import fastmlp.backends.cython"], env=env,
                         capture_output=True, text=True, check=True)
    assert f"built for a {tuning.KIND} machine and runs on a {other} one" in run.stderr
    mine = subprocess.run([sys.executable, "-c", "import fastmlp.backends.cython"],
                          capture_output=True, text=True, check=True)
    assert "built for a" not in mine.stderr
