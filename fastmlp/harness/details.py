"""``details.md``: the long tables behind the report's first page (kernels, sweeps,
side by side, spread, first use, cold start, other tools)."""
from __future__ import annotations

import pandas as pd

from fastmlp.harness import speed, tables


def markdown(df, names, status, figures, cold, others):
    """The second page's Markdown (the figures are already written)."""
    return "\n".join([
        "# fastmlp report: details\n", "[Back to the report](report.md)\n",
        "## Backends\n", tables.markdown(_backend_table(status)),
        "\nThe naive `python` backend runs a case only when one call is estimated under "
        f"{speed.PYTHON_LIMIT_S:g} s (from its FLOP rate in a pilot matmul, then a time limit "
        "on the first call); elsewhere it shows as *not run (too slow)*.\n",
        peak_md(df, tables.gemm_peak(df)), _speed_md(df, names, status, figures),
        _cold_md(cold), _compare_md(df, others),
        "\n## Files\n\n`results.csv` / `results.json`: one row per case and backend (seconds "
        "per call, per batch for `fit/...` cases, whose `steps` counts a call's batches: "
        "median, quartiles, min; GFLOP/s; first call), `coldstart.json`, "
        "`compare.json`, `epochs.json`, `time_to_accuracy.json` (every row's accuracy after each "
        "epoch), `convergence.json` (with every loss curve), "
        "`seed.json` (every curve of *The seed, reproduced*), `machine.json`, `runs.json` "
        "(seconds of each run that filled this directory).\n"])


def peak_md(df, peak):
    if not peak:
        return ""
    start, end = tables.gemm_peak(df, "gemm_peak"), tables.gemm_peak(df, "gemm_peak_end")
    text = (f"GEMM peak of this machine (the best `numpy.matmul` float32 rate of this run, the "
            f"roofline and the 100% of every peak fraction): **{peak:.1f} GFLOP/s**")
    if start and end:
        text += (f". The reference case ({_size_of(df, 'gemm_peak')}) gave {start:.1f} GFLOP/s "
                 f"at the start of the run and {end:.1f} GFLOP/s at the end")
        if abs(end / start - 1) > 0.25:
            text += (". **They differ by more than 25%: the machine's load changed during the "
                     "run (other processes compete for the 2 cores, and OpenBLAS degrades badly "
                     "when a core is taken); read the ratios with care and rerun on a quiet "
                     "machine**")
    return text + ".\n"


def _size_of(df, name):
    hit = df[df.name == name]
    return hit["size"].iloc[0] if len(hit) else "?"


def _backend_table(status):
    return pd.DataFrame([dict(backend=n, status="available" if ok else "unavailable",
                              reason=reason or "") for n, (ok, reason) in status.items()])


def _speed_md(df, names, status, figures):
    out = ["## Training steps\n",
           "Median time per step (one `model.make_step(X, y, optimizer)()` call: one "
           "`network_train_step` kernel call):\n",
           tables.markdown(tables.wide(df, names, status, groups=["step"], fmt=tables.seconds)),
           "\nSpeedup over `numpy` (median / median):\n",
           tables.markdown(tables.wide(df, names, status, "x_numpy", ["step"], tables.ratio)),
           "\nSpeedup over `python` (where it ran):\n",
           tables.markdown(tables.wide(df, names, status, "x_python", ["step"], tables.ratio)),
           "\n## Training through `fit` (float32, Adam)\n",
           "`MLP.fit` over a fixed data set (whole batches only) for the given epochs, the "
           "model warm (a first fit compiled it and built its workspaces), per batch: a "
           "call's time divided by its batches; beside it the same network's step, timed "
           f"round by round with it. Target: fit / step <= {tables.FIT_OVER_STEP:g} "
           "(compiled backends).\n",
           tables.markdown(tables.fit_vs_step(df, names)),
           "\n## Sweeps (float32, Adam)\n",
           tables.markdown(tables.wide(df, names, status, groups=["sweep-width", "sweep-batch"],
                                       fmt=tables.seconds)),
           "\n(Figures: the first page's speedup and time-versus-size plots.)\n",
           "\n## Kernels\n",
           "Median time per call (IQR, GFLOP/s and all other figures per row are in "
           "`results.csv`):\n",
           tables.markdown(tables.wide(df, names, status, groups=["kernel"], fmt=tables.seconds)),
           "\nGFLOP/s (elementwise kernels are memory-bound; see the FLOP conventions in "
           "`fastmlp/harness/workloads.py`):\n",
           tables.markdown(tables.wide(df, names, status, "gflops", ["kernel"],
                                       lambda v: f"{v:.3g}")),
           "\nFraction of the GEMM peak:\n",
           tables.markdown(tables.wide(df, names, status, "peak_fraction",
                                       ["kernel", "step"], lambda v: f"{100 * v:.1f}%")),
           f"\n![roofline]({figures['roofline']})\n",
           "\n## Compiled backends side by side\n",
           "Median times per case; the last column is the ratio of the times (above 1: the "
           "second backend is slower on that case).\n",
           tables.markdown(tables.side_by_side(df, status)),
           "\n## Spread\n",
           "Interquartile range of the per-call time, as a percentage of the median:\n",
           tables.markdown(_spread(df, names, status)),
           "\n## First use in this process\n",
           "Time to set up each case (for a step, `make_step`: checks, workspace and, for "
           "Numba, binding the compiled kernel, loaded from the disk cache that a second "
           "process filled while the report ran its cold starts and its untimed sections) "
           "plus its very first call, apart from the steady-state median above:\n",
           tables.markdown(tables.wide(df, names, status, "first_use_s", ["step"],
                                       tables.seconds))]
    return "\n".join(out)


def _spread(df, names, status):
    df = df.assign(spread=100 * df.iqr_s / df.median_s)
    return tables.wide(df, names, status, "spread", ["step", "sweep-batch"],
                       lambda v: f"{v:.1f}%")


def _cold_md(cold):
    if not cold:
        return "\n## Cold start\n\nNot measured in quick mode.\n"
    rows = []
    for key, r in cold.items():
        backend, _, workload = key.partition(" | ")
        rows.append(dict(backend=backend, workload=workload or "spiral float32",
                         **{k: (tables.seconds(v) if isinstance(v, float) else v)
                            for k, v in r.items()}))
    order = list(dict.fromkeys(r["workload"] for r in rows))  # the warm rows ran last
    rows.sort(key=lambda r: order.index(r["workload"]))
    table = pd.DataFrame(rows).fillna("")
    return ("\n## Cold start (fresh process)\n\nThe first training step of spiral 2-100-3 "
            "b300 Adam, digits 64-100-10 b32 Adam and MNIST 784-512-512-10 b256 RMSprop, in "
            "float32 and float64, each in a new Python process with an empty "
            "`NUMBA_CACHE_DIR`: import, `make_step` (for Numba, the JIT compile of every "
            "kernel the step uses), first call, second call, steady-state median. The "
            "warm-cache rows are a new process loading the kernels from Numba's disk cache "
            "(filled by this report's compile), as every run after the first does. The "
            "cold rows ran one at a time beside that compile, on the other core: their "
            "compile is timed as alone (Numba compiles on one core; a cold digits step "
            "13.7-15.6 s beside a compile, 13.7-14.4 s alone), but the MNIST shape's calls "
            "after it (two threads each) shared a core with it, so its first, second and "
            "steady calls are slower here than in the speed tables.\n\n"
            + tables.markdown(table) + "\n")


def _compare_md(df, others):
    rows = [dict(tool=r["tool"], workload=r["workload"],
                 time=tables.seconds(r["median_s"]) if r["status"] == "ok" else r["status"])
            for r in others]
    for name in dict.fromkeys(r["workload"].split()[0] for r in others):
        hit = df[(df.group == "step") & (df.name == name) & (df.dtype == "float32")
                 & (df.status == "ok")]
        rows += [dict(tool=f"fastmlp {h.backend}", workload=f"{name} {h.size} f32",
                      time=tables.seconds(h.median_s)) for h in hit.itertuples()]
    return ("\n## Other tools, same step\n\nOne training step on the same network and batch "
            "(scikit-learn: `partial_fit` with batch_size = the batch, always Adam, its only "
            "adaptive solver; PyTorch CPU: forward, loss, backward and the optimizer step, "
            "Adam or RMSprop as in fastmlp's step; install it with "
            "`pip install -e .[compare]`).\n\n" + tables.markdown(pd.DataFrame(rows)) + "\n")


