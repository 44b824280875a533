"""The report's figures (matplotlib, Agg: no display needed). Each function saves one PNG."""
from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MARKERS = "osD^v<>p*h"
#: Line style of each matrix-product path (``matmul``, ``matmul_blas``, ``matmul_blocked``).
VARIANT_LINES = {"": "-", "blas": ":", "blocked": "--"}


def _style(backends):
    """A fixed colour and marker per backend, in registry order, so figures read alike."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {b: dict(color=colours[i % len(colours)], marker=MARKERS[i % len(MARKERS)])
            for i, b in enumerate(backends)}


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def time_vs_size(df, backends, path):
    """Log-log time per call against size: square matmul, width sweep, batch sweep."""
    panels = [("kernel", "matmul", "matmul n x n x n (f32)", "n", r"^\d+x\d+x\d+$"),
              ("sweep-width", "width", "step 64-W-10 b256 Adam (f32)", "hidden width W", None),
              ("sweep-batch", "batch", "step 64-100-10 Adam (f32)", "batch size", None)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    style = _style(backends)
    ok = df[(df.status == "ok") & (df.dtype == "float32")]
    for ax, (group, name, title, xlabel, pattern) in zip(axes, panels):
        sub = ok[(ok.group == group) & ok.name.str.startswith(name)]
        if pattern:
            sub = sub[sub["size"].str.match(pattern)
                      & sub["size"].map(lambda s: len(set(s.split("x"))) == 1)]
        for (backend, kernel), part in sub.groupby(["backend", "name"]):
            part = part.sort_values("x")
            variant = kernel[len(name) + 1:]  # "", "blas" or "blocked"
            ax.loglog(part.x, part.median_s, label=f"{backend} {variant}".strip(),
                      ls=VARIANT_LINES.get(variant, "-."), **style.get(backend, {}))
        ax.set(title=title, xlabel=xlabel, ylabel="seconds per call")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _save(fig, path)


def speedups(df, backends, path, reference="numpy"):
    """Speedup over ``reference`` of every backend on the training-step workloads (log bars)."""
    ok = df[(df.status == "ok") & (df.group == "step")].copy()
    keys = list(dict.fromkeys(ok.key))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(keys)), 4.5))
    width = 0.8 / max(1, len(backends))
    style = _style(backends)
    for i, backend in enumerate(backends):
        vals = [ok[(ok.key == k) & (ok.backend == backend)].x_numpy for k in keys]
        vals = [float(v.iloc[0]) if len(v) else 0.0 for v in vals]
        ax.bar(np.arange(len(keys)) + i * width, vals, width, label=backend,
               color=style[backend]["color"])
    ax.set_yscale("log")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2)
    ax.set_xticklabels([_label(k) for k in keys], fontsize=7, rotation=25, ha="right")
    ax.set(ylabel=f"speedup over {reference} (x)", title="Training step speedup (one step)")
    ax.legend()
    return _save(fig, path)


def _label(key):
    """``step/mnist/784-512-512-10 b256 rmsprop/f32`` -> ``mnist f32 (784-512-512-10 b256)``."""
    _, name, size, dtype = key.split("/")
    return f"{name} {dtype}\n({' '.join(size.split()[:2])})"


def roofline(df, backends, peak, path):
    """GFLOP/s of every kernel and step against its FLOPs, with the measured GEMM peak line."""
    fig, ax = plt.subplots(figsize=(8, 5))
    style = _style(backends)
    ok = df[(df.status == "ok") & df.group.isin(["kernel", "step", "sweep-width", "sweep-batch"])]
    for backend, part in ok.groupby("backend"):
        ax.scatter(part.flops, part.gflops, label=backend, s=18, alpha=0.8,
                   color=style[backend]["color"], marker=style[backend]["marker"])
    if peak:
        ax.axhline(peak, color="k", ls="--", lw=1)
        ax.text(0.02, peak * 1.1, f"numpy float32 GEMM peak {peak:.0f} GFLOP/s", fontsize=8,
                transform=ax.get_yaxis_transform())  # x in axes fraction, y in data
    ax.set(xscale="log", yscale="log", xlabel="FLOPs per call", ylabel="GFLOP/s",
           title="Attained GFLOP/s against the GEMM peak of this machine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def batch_losses(runs, path, title, window=25):
    """Loss of every mini-batch, one colour per optimizer, on one plot (the seed's figure).

    The raw losses are drawn faint, their moving average over ``window`` batches bold:
    mini-batch losses jump by orders of magnitude from batch to batch.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, losses) in enumerate(runs.items()):
        batches = np.arange(1, len(losses) + 1)
        ax.plot(batches, losses, color=f"C{i}", lw=0.5, alpha=0.25)
        ax.plot(batches[window - 1:], _moving_average(losses, window), color=f"C{i}", lw=1.6,
                label=f"{name} (mean of {window})")
    ax.set(yscale="log", xlabel="mini-batch", ylabel="training loss", title=title)
    ax.legend()
    return _save(fig, path)


def _moving_average(values, window):
    return np.convolve(values, np.ones(window) / window, mode="valid")


def dropout_curves(curves, path, title):
    """Training vs validation loss and accuracy per epoch, without and with dropout."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for (label, rows), ls in zip(curves.items(), ("-", "--")):
        for metric, ax in zip(("loss", "accuracy"), axes):
            ax.plot(rows["epoch"], rows[metric], ls=ls, color="C0", label=f"train, {label}")
            ax.plot(rows["epoch"], rows[f"val_{metric}"], ls=ls, color="C1",
                    label=f"validation, {label}")
            ax.set(xlabel="epoch", ylabel=metric, title=f"{title}: {metric}")
    axes[0].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=8)
    return _save(fig, path)
