"""``report.md`` from the stored results: tables, figures and the words around them."""
from __future__ import annotations

import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from fastmlp.harness import convergence as conv
from fastmlp.harness import plots, speed, tables


def render(out, store, status, sections, quick, run_seconds, conv_backend):
    """The text of ``report.md``; writes the figures next to it."""
    cold, results = sections["coldstart"], sections["convergence"]
    others = sections["compare"].get("rows", [])
    df = tables.frame(store.rows)
    names = list(status)
    ran = [n for n in names if status[n][0]]
    peak = tables.gemm_peak(df)
    figures = {
        "time": plots.time_vs_size(df, ran, out / "time_vs_size.png"),
        "speedup": plots.speedups(df, ran, out / "speedup.png"),
        "roofline": plots.roofline(df, ran, peak, out / "roofline.png"),
    }
    figures.update(_convergence_figures(out, results))
    info = store.section("machine")
    s = []
    add = s.append
    add(f"# fastmlp report{' (quick mode)' if quick else ''}\n")
    runs = f" over {len(run_seconds)} resumed runs" if len(run_seconds) > 1 else ""
    add(f"Made by `{_command()}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"measuring took {sum(run_seconds):.0f} s{runs} (plus rendering this page).\n")
    add("## Machine\n")
    add(_machine_md(info))
    add("\n## Backends\n")
    add(tables.markdown(_backend_table(status)))
    add("\nThe naive `python` backend runs a case only when one call is estimated under "
        f"{speed.PYTHON_LIMIT_S:g} s (from its FLOP rate in a pilot matmul, then a time limit "
        "on the first call); elsewhere it shows as *not run (too slow)*.\n")
    add("## Speed targets (ratios of medians measured side by side in this run)\n")
    tgt = tables.targets(df, status)
    add("```\n" + ("\n".join(tgt.line) if len(tgt) else "no compiled backend available") +
        "\n```\n")
    add(_peak_md(df, peak))
    add(_speed_md(df, names, status, figures))
    add(_cold_md(cold))
    add(_compare_md(df, others))
    add(_convergence_md(results, figures, conv_backend, quick))
    add("\n## Files\n\n`results.csv` / `results.json`: one row per case and backend (seconds per "
        "call: median, quartiles, min; GFLOP/s; first call), `coldstart.json`, "
        "`compare.json`, `convergence.json` (with every loss curve), `machine.json`, "
        "`runs.json` (seconds of each run that filled this directory).\n")
    return "\n".join(s)


def _peak_md(df, peak):
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


def _command():
    args = sys.argv[1:] if Path(sys.argv[0]).name in ("fastmlp", "__main__.py", "cli.py") else []
    return " ".join(["fastmlp"] + [shlex.quote(a) for a in args]) if args else "fastmlp report"


def _size_of(df, name):
    hit = df[df.name == name]
    return hit["size"].iloc[0] if len(hit) else "?"


def _machine_md(info):
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads, "
                     f"{b.get('architecture')})" for b in info["blas"]) or "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (f"- CPU: {info['cpu']}, {info['cores']} logical cores; {info['platform']}\n"
            f"- BLAS: {blas}\n- Versions: {versions}\n"
            f"- Thread settings: {info['env'] or 'library defaults'}\n"
            f"- Load average (1 min) at start / end: {info.get('load_at_start')} / "
            f"{info.get('load_at_end')} (other work on the machine slows every figure)\n"
            "- dtypes: float32 unless a table says float64\n")


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
           f"\n![speedup]({figures['speedup']})\n",
           "\n## Sweeps (float32, Adam)\n",
           tables.markdown(tables.wide(df, names, status, groups=["sweep-width", "sweep-batch"],
                                       fmt=tables.seconds)),
           f"\n![time vs size]({figures['time']})\n",
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
           "Numba, binding the compiled kernel, which compiles it when its disk cache is "
           "cold) plus its very first call, apart from the steady-state median above:\n",
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
    rows = [dict(backend=b, **{k: (tables.seconds(v) if isinstance(v, float) else v)
                               for k, v in r.items()}) for b, r in cold.items()]
    table = pd.DataFrame(rows).fillna("")
    return ("\n## Cold start (fresh process)\n\nSpiral 2-100-3 b300 f32 Adam step in a new "
            "Python process with an empty `NUMBA_CACHE_DIR`: import, `make_step` (for Numba, "
            "the JIT compile of every kernel the step uses), first call, second call, "
            "steady-state median. The "
            "warm-cache row is a new process loading the kernels this report compiled from "
            "Numba's disk cache, as every run after the first does.\n\n"
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


def _convergence_figures(out, results):
    figs = {}
    runs = {opt: results[f"digits/{opt}"]["batch_losses"]
            for opt in ("sgd", "rmsprop", "adam", "adagrad")
            if "batch_losses" in results.get(f"digits/{opt}", {})}
    if runs:
        figs["batch_losses"] = plots.batch_losses(
            runs, out / "loss_per_batch.png", "digits 64-100-10: loss per mini-batch")
    for name, (sizes, *_) in conv.DROPOUT_DEMO.items():
        curves = results.get(f"dropout/{name}", {})
        if curves and "not_run" not in curves:
            figs[f"dropout/{name}"] = plots.dropout_curves(
                curves, out / f"dropout_{name}.png",
                f"{name} {'-'.join(map(str, sizes))}, Adam")
    return figs


def _convergence_md(results, figures, backend, quick):
    out = [f"\n## Convergence (backend `{backend}`, float32, seed 0)\n"]
    if quick:
        out.append("_Quick mode: a few epochs only; PASS/FAIL here only proves the pipeline._\n")
    rows, missing = [], []
    for key, r in results.items():
        if "/" in key and key.split("/")[0] in conv.TASKS:
            if "not_run" in r:
                missing.append(r["not_run"])
                continue
            rows.append({"data": r["dataset"], "optimizer": r["optimizer"], "lr": r["lr"],
                         "epochs": r["epochs"], "batch": r["batch_size"],
                         "final loss": f"{r['final_loss']:.4f}",
                         "train acc": f"{r['train_accuracy']:.4f}",
                         "test acc": f"{r['test_accuracy']:.4f}",
                         "target": f"{r['metric']} >= {r['threshold']:.3g}",
                         "steps to target": r["steps_to_target"] or "-",
                         "result": "PASS" if r["passed"] else "FAIL",
                         "time": tables.seconds(r["seconds"])})
    out.append(tables.markdown(pd.DataFrame(rows)))
    if missing:
        out.append("\nMNIST: " + sorted(set(missing))[0] + "\n")
    xor = [r for k, r in results.items() if k.startswith("xor/")]
    if xor:
        out.append(f"\n### XOR 2-2-1 (sigmoid output, full batch, float64, seeds "
                   f"0..{xor[0]['seeds'] - 1})\n\n"
                   "Success = all four points classified right after the given steps. With "
                   "zero initial biases a 2-unit ReLU net is often stuck (dead units, or "
                   "(0, 0) mapped to 0), so the rate is the figure; tanh is shown for contrast.\n")
        xor = pd.DataFrame(xor)
        xor["success_rate"] = xor["success_rate"].map("{:.0%}".format)
        out.append(tables.markdown(xor[["activation", "optimizer", "lr", "steps", "seeds",
                                        "successes", "success_rate"]]))
    agree = [row for k, r in results.items() if k.startswith("agreement/") for row in r]
    if agree:
        a = conv.AGREEMENT
        out.append(f"\n### Backends agree\n\nSpiral {a['sizes']}, Adam lr={a['lr']}, batch "
                   f"{a['batch_size']}, seed 0, shuffled: every mini-batch loss compared with "
                   "`numpy`'s (max relative difference; tolerance per dtype).\n")
        agree = pd.DataFrame(agree)
        agree["max_rel_diff"] = agree["max_rel_diff"].map("{:.2e}".format)
        out.append(tables.markdown(agree))
    if "batch_losses" in figures:
        out.append(f"\n![loss per batch]({figures['batch_losses']})\n")
    for name in conv.DROPOUT_DEMO:
        if f"dropout/{name}" in figures:
            out.append(f"\nOverfitting without dropout, and dropout 0.5 holding validation "
                       f"loss down ({name}):\n\n![dropout {name}]({figures['dropout/' + name]})\n")
    return "\n".join(out)
