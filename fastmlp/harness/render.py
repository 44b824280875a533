"""``report.md`` and ``details.md`` from the stored results: tables, figures and words.

The first page opens with the answer (which tool trains the seed's MLPs fastest),
then the speed targets, the seed's experiments and convergence; the long per-kernel
tables are on the second page (``details``).
"""
from __future__ import annotations

import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from fastmlp.harness import answer, details, plots, seed_section, tables
from fastmlp.harness.machine import LAYERED
from fastmlp.harness import convergence as conv
from fastmlp.harness import time_to_accuracy as tta


def render(out, store, status, sections, quick, run_seconds, conv_backend):
    """``(report.md text, details.md text)``; writes the figures next to them."""
    cold, results = sections["coldstart"], sections["convergence"]
    others = sections["compare"].get("rows", [])
    df = tables.frame(store.rows)
    names = list(status)
    ran = [n for n in names if status[n][0]]
    figures = {
        "time": plots.time_vs_size(df, ran, out / "time_vs_size.png"),
        "speedup": plots.speedups(df, ran, out / "speedup.png"),
        "roofline": plots.roofline(df, ran, tables.gemm_peak(df), out / "roofline.png"),
    }
    figures.update(_convergence_figures(out, results))
    summary = answer.frame(df, others, sections["epochs"].get("rows", []), names)
    s = []
    add = s.append
    add(f"# fastmlp report{' (quick mode)' if quick else ''}\n")
    runs = f" over {len(run_seconds)} resumed runs" if len(run_seconds) > 1 else ""
    add(f"Made by `{_command()}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"measuring took {sum(run_seconds):.0f} s{runs} (plus rendering this page). The long "
        "tables (every kernel, sweeps, spread, cold start) are on the second page, "
        "[details.md](details.md); `report.html` holds both pages and every figure in one "
        "file.\n")
    add(answer.markdown(summary, out))
    add("## Speed targets (ratios of medians measured side by side in this run)\n")
    tgt = tables.targets(df, status)
    add("```\n" + tables.target_lines(tgt) + "\n```\n")
    add(_shortfalls_md(tables.shortfalls(tgt, store.section("machine"), tables.drift(df))))
    add(details.peak_md(df, tables.gemm_peak(df)))
    add(f"![speedup]({figures['speedup']})\n\n![time vs size]({figures['time']})\n")
    add(_growth_md(df))
    add(tta.markdown(sections.get("time_to_accuracy", {}), out, quick))
    add(seed_section.markdown(sections["seed"], out, conv_backend))
    add(_convergence_md(results, figures, conv_backend, quick))
    add("\n## Machine\n")
    add(_machine_md(store.section("machine")))
    return "\n".join(s), details.markdown(df, names, status, figures, cold, others)


def _shortfalls_md(lines):
    if not lines:
        return ""
    return ("Why a target fell short, from this run's own measurements:\n\n"
            + "".join(f"- {line}\n" for line in lines))


def _growth_md(df):
    """How a step's time grows in the sweeps: the fitted exponents, per backend."""
    parts = []
    for group, what in (("sweep-width", "hidden width W (64-W-10, batch 256)"),
                        ("sweep-batch", "batch B (64-100-10)")):
        ok = df[(df.group == group) & (df.status == "ok")]
        ks = [f"`{b}` {plots.fitted_exponent(part.x, part.median_s):.2f}"
              for b, part in ok.groupby("backend", sort=False) if len(part) >= 2]
        if ks:
            parts.append(f"in {what}: " + ", ".join(ks))
    if not parts:
        return ""
    return (f"How a step's time grows, time ~ size^k with k fitted over the "
            f"{plots.FIT_POINTS} largest sizes (1: linear; below 1: fixed costs still count), "
            + "; ".join(parts) + ".\n")


def _command():
    args = sys.argv[1:] if Path(sys.argv[0]).name in ("fastmlp", "__main__.py", "cli.py") else []
    return " ".join(["fastmlp"] + [shlex.quote(a) for a in args]) if args else "fastmlp report"


def _machine_md(info):
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['num_threads']} threads, "
                     f"{b.get('architecture')})" for b in info["blas"]) or "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (f"- CPU: {info['cpu']}, {info['cores']} logical cores; {info['platform']}\n"
            f"- BLAS: {blas}\n- Versions: {versions}\n"
            f"- Thread settings: {info['env'] or 'library defaults'}\n"
            + _paths_md(info.get("product_paths") or {}) +
            f"- Load average (1 min) at start / end: {info.get('load_at_start')} / "
            f"{info.get('load_at_end')} (other work on the machine slows every figure)\n"
            "- dtypes: float32 unless a table says float64\n")


def _paths_md(paths):
    """The machine kind's thresholds and the kernels and product paths of each step."""
    if "kind" not in paths:
        return ""
    thresholds = ", ".join(f"{k} {v}" for k, v in paths.items() if not isinstance(v, dict)
                           and k != "kind")
    workloads = []
    for name, layers in paths.get("steps", {}).items():
        products = " | ".join(", ".join(f"{p} {path}" for p, path in layer.items())
                              for layer in layers)
        kernels = paths.get("step_kernels", {}).get(name, LAYERED)
        workloads.append(f"{name}: {LAYERED}, {products}" if kernels == LAYERED else
                         f"{name}: {kernels} (layer by layer: {products})")
    return (f"- Kernel paths (machine kind {paths['kind']}: {thresholds}; the Cython build's "
            f"are its building machine's): {'; '.join(workloads) or 'none recorded'}\n")


def _convergence_figures(out, results):
    figs = {}
    runs = {opt: results[f"digits/{opt}"]["batch_losses"]
            for opt in ("sgd", "rmsprop", "adam", "adagrad")
            if "batch_losses" in results.get(f"digits/{opt}", {})}
    if runs:
        figs["batch_losses"] = plots.batch_losses(
            runs, out / "loss_per_batch.png", "digits 64-100-10: loss per mini-batch")
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
    return "\n".join(out)
