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


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def time_vs_size(df, backends, path):
    """Log-log time per call against size: square matmul, width sweep, batch sweep.

    Error bars span the quartiles of the per-call time; each sweep's legend gives
    the exponent k of time ~ size^k fitted over its ``FIT_POINTS`` largest sizes.
    """
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
            label = f"{backend} {variant}".strip()
            if group.startswith("sweep") and len(part) >= 2:
                label += f" (k = {fitted_exponent(part.x, part.median_s):.2f})"
            ax.errorbar(part.x, part.median_s, yerr=_quartile_bars(part), label=label,
                        ls=VARIANT_LINES.get(variant, "-."), capsize=2, **style.get(backend, {}))
        ax.set(title=title, xlabel=xlabel, ylabel="seconds per call", xscale="log",
               yscale="log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return save(fig, path)


#: Points (largest sizes) over which a sweep's exponent is fitted: past the sizes where a
#: step is all fixed overhead.
FIT_POINTS = 3


def fitted_exponent(x, seconds, points=FIT_POINTS):
    """k in seconds ~ x^k: the least-squares slope in log-log over the ``points`` largest x."""
    order = np.argsort(np.asarray(x, float))[-points:]
    return float(np.polyfit(np.log(np.asarray(x, float)[order]),
                            np.log(np.asarray(seconds, float)[order]), 1)[0])


def _quartile_bars(part):
    """``yerr`` from the first and third quartiles around the median (absent: none)."""
    low = (part.median_s - part.q1_s).clip(lower=0).fillna(0)
    return np.vstack([low, (part.q3_s - part.median_s).clip(lower=0).fillna(0)])


def speedups(df, backends, path, reference="numpy"):
    """Speedup over ``reference`` of every backend on the training-step workloads (log bars)."""
    ok = df[(df.status == "ok") & (df.group == "step")].copy()
    keys = list(dict.fromkeys(ok.key))
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(keys)), 4.5))
    width = 0.8 / max(1, len(backends))
    style = _style(backends)
    ref = ok[ok.backend == reference].set_index("key")
    for i, backend in enumerate(backends):
        hits = [ok[(ok.key == k) & (ok.backend == backend)] for k in keys]
        vals = np.array([float(h.x_numpy.iloc[0]) if len(h) else 0.0 for h in hits])
        # the ratio's spread: the reference's quartiles over this backend's, crosswise
        spans = np.array([(ref.q1_s[k] / h.q3_s.iloc[0], ref.q3_s[k] / h.q1_s.iloc[0])
                          if len(h) and k in ref.index else (0.0, 0.0)
                          for k, h in zip(keys, hits)])
        yerr = np.vstack([vals - spans[:, 0], spans[:, 1] - vals]).clip(min=0)
        ax.bar(np.arange(len(keys)) + i * width, vals, width, label=backend,
               color=style[backend]["color"], yerr=np.nan_to_num(yerr), capsize=2,
               error_kw=dict(lw=0.8))
    ax.set_yscale("log")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2)
    ax.set_xticklabels([_label(k) for k in keys], fontsize=7, rotation=25, ha="right")
    ax.set(ylabel=f"speedup over {reference} (x)",
           title="Training step speedup (one step; bars: quartile ranges of the ratio)")
    ax.legend()
    return save(fig, path)


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
    return save(fig, path)


def summary(frame, path, titles):
    """Time per step (top) and per epoch (bottom) of every tool on each seed workload, log
    scale, bars from the first to the third quartile; ``frame``: ``answer.frame``'s."""
    names = list(dict.fromkeys(frame.workload))
    fig, axes = plt.subplots(2, len(names), figsize=(4.2 * len(names), 6.5), squeeze=False)
    tools = list(dict.fromkeys(frame.tool))
    colours = [f"C{i}" for i in range(len(tools))]
    for column, name in enumerate(names):
        part = frame[frame.workload == name].set_index("tool").reindex(tools)
        for row, kind in enumerate(("step", "epoch")):
            ax, median = axes[row, column], part[f"{kind}_s"]
            xerr = np.vstack([median - part[f"{kind}_q1"], part[f"{kind}_q3"] - median])
            ax.barh(np.arange(len(tools)), median.fillna(0), color=colours,
                    xerr=np.nan_to_num(xerr.clip(min=0)), capsize=2, error_kw=dict(lw=0.8))
            for y, (value, ratio) in enumerate(zip(median, part[f"{kind}_x"])):
                if np.isfinite(value):
                    ax.text(value, y, f" {ratio:.2g}x" if np.isfinite(ratio) else "",
                            va="center", fontsize=7)
                else:
                    ax.text(0.02, y, "not run", va="center", fontsize=7,
                            transform=ax.get_yaxis_transform())
            if (median > 0).any():
                # a common base a decade below the fastest: bar lengths then compare as ratios
                ax.set_xscale("log")
                ax.set_xlim(median.min() / 10, part[f"{kind}_q3"].max() * 4)
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_yticks(np.arange(len(tools)), tools if column == 0 else [""] * len(tools))
            ax.invert_yaxis()
            ax.set_title(f"{titles.get(name, name)}: seconds per {kind}", fontsize=9)
            ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.suptitle("Which tool trains the seed's MLPs fastest (labels: speedup over numpy)")
    return save(fig, path)


def batch_losses(runs, path, title, window=25):
    """Loss of every mini-batch, one colour per optimizer, on one plot (the seed's figure).

    The raw losses are drawn faint, their moving average over ``window`` batches bold:
    mini-batch losses jump by orders of magnitude from batch to batch.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, (name, losses) in enumerate(runs.items()):
        batches, window = np.arange(1, len(losses) + 1), min(window, len(losses))
        ax.plot(batches, losses, color=f"C{i}", lw=0.5, alpha=0.25)
        ax.plot(batches[window - 1:], _moving_average(losses, window), color=f"C{i}", lw=1.6,
                label=f"{name} (mean of {window})")
    ax.set(yscale="log", xlabel="mini-batch", ylabel="training loss", title=title)
    ax.legend()
    return save(fig, path)


def _moving_average(values, window):
    return np.convolve(values, np.ones(window) / window, mode="valid")


def time_to_accuracy(results, path):
    """Accuracy against seconds of training, one panel per task with a target (log time,
    target dashed); seconds per epoch as bars for a task without one."""
    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.2), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items()):
        ran = [(f"C{i}", r) for i, r in enumerate(rows) if "curve" in r]  # a colour per tool
        first = rows[0] if rows else {}
        target, title = first.get("target"), f"{name} {first.get('network', '')}"
        if target is None:
            ax.barh([r["tool"] for _, r in ran], [r["seconds_per_epoch"] for _, r in ran],
                    color=[c for c, _ in ran])
            ax.invert_yaxis()
            ax.set(xscale="log", xlabel="seconds per epoch", title=f"{title}: seconds per epoch")
            ax.tick_params(axis="y", labelsize=7)
            continue
        for colour, r in ran:
            seconds, accuracy = np.array(r["curve"]).T
            ax.plot(seconds, accuracy, color=colour, marker=".", ms=3, label=r["tool"])
        ax.axhline(target, color="k", ls="--", lw=0.8)
        ax.set(xscale="log", xlabel="seconds of training", ylabel="accuracy",
               title=f"{title}: {first['on']} accuracy to {target:.0%}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, path)
