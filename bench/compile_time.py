"""First use of the Numba backend in seconds: each case in a fresh process, cold then warm.

Each case runs in a new Python process with an empty ``NUMBA_CACHE_DIR`` (a temporary
directory: cold, Numba compiles), then once more in a new process on the same directory
(warm, Numba loads from its disk cache). The figure is the case's whole time, import
included. ``--events`` also prints, for the cold run, the compiles Numba reports
(``numba.core.event``): how many specialisations each function got and their seconds.

    .venv/bin/python bench/compile_time.py                      # every case
    .venv/bin/python bench/compile_time.py step/digits/f32 --events
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

#: name -> the code a fresh process runs (it is timed from before ``import fastmlp``).
CASES = {
    "kernel/matmul/f32": "first_kernel('matmul')",
    "kernel/linear_forward/f32": "first_kernel('linear_forward')",
    # A narrow shape (the spiral's first layer): its products take the narrow loops.
    **{f"kernel/{name}/300x2x100/f32": f"first_kernel('{name}', 300, 2, 100)"
       for name in ("linear_forward", "linear_backward")},
    **{f"step/{name}/{dt}": f"first_step({sizes}, {batch}, '{opt}', '{dtype}')"
       for name, sizes, batch, opt in [("spiral", [2, 100, 3], 300, "adam"),
                                       ("digits", [64, 100, 10], 32, "rmsprop"),
                                       ("mnist", [784, 512, 512, 10], 256, "rmsprop")]
       for dt, dtype in [("f32", "float32"), ("f64", "float64")]},
    "fit/digits/f32": "digits_epoch()",
}

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np

def first_kernel(name, m=64, k=64, n=64):
    from fastmlp import backends
    from fastmlp.backends.contract import RELU
    kernels = backends.get("numba")
    rng = np.random.default_rng(0)
    A, B = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    out, b = np.empty((m, n), np.float32), np.zeros(n, np.float32)
    if name == "matmul":
        kernels.matmul(A, B, out)
    elif name == "linear_forward":
        kernels.linear_forward(A, B, b, RELU, out)
    else:  # dZ = out: dW, db and dX
        kernels.linear_backward(A, B, out, np.empty_like(B), b, np.empty_like(A))

def first_step(sizes, batch, optimizer, dtype):
    from fastmlp import MLP
    rng = np.random.default_rng(0)
    X = rng.random((batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], batch)
    MLP(sizes, backend="numba", dtype=dtype).make_step(X, y, optimizer)()

def digits_epoch():
    from fastmlp import MLP, datasets
    (X, y), _ = datasets.digits("float32")
    MLP([64, 100, 10], backend="numba", dtype="float32").fit(X, y, epochs=1)

events = sys.argv[2] == "1"
if events:
    from numba.core import event
    recorder = event.RecordingListener()
    event.register("numba:compile", recorder)
exec(sys.argv[1])
seconds, cpu = time.perf_counter() - t0, time.process_time()
compiles = {}
if events:
    starts = {}
    for ts, ev in recorder.buffer:
        key = ev.data["dispatcher"].py_func.__qualname__
        if ev.is_start:
            starts.setdefault(key, []).append(ts)
        else:
            n, total = compiles.get(key, (0, 0.0))
            compiles[key] = (n + 1, total + ts - starts[key].pop())
print(json.dumps(dict(seconds=seconds, cpu=cpu, compiles=compiles)))
"""


def run(code, cache, events=False, timeout=900):
    """The child's result dict for ``code`` with NUMBA_CACHE_DIR=cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    done = subprocess.run([sys.executable, "-c", CHILD, code, "1" if events else "0"],
                          env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"case names (default all): {', '.join(CASES)}")
    parser.add_argument("--events", action="store_true",
                        help="print the compiles of each cold run, slowest first")
    args = parser.parse_args(argv)
    names = args.cases or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; cases are {', '.join(CASES)}")
    print(f"{'case':28} {'cold s':>8} {'cpu s':>8} {'warm s':>8} {'cpu s':>8} {'compiles':>9}")
    for name in names:
        with tempfile.TemporaryDirectory() as cache:
            cold = run(CASES[name], cache, args.events)
            warm = run(CASES[name], cache)
        count = sum(n for n, _ in cold["compiles"].values()) if args.events else ""
        print(f"{name:28} {cold['seconds']:8.1f} {cold['cpu']:8.1f} {warm['seconds']:8.2f} "
              f"{warm['cpu']:8.2f} {count:>9}", flush=True)
        if args.events:
            rows = sorted(cold["compiles"].items(), key=lambda kv: -kv[1][0])
            for fn, (n, total) in rows:
                print(f"    {fn:36} {n:4d} x  {total:7.1f} s (callees included)")


if __name__ == "__main__":
    main()
