"""The report's opening: which tool trains the seed's MLPs fastest, from this run's numbers.

One table per seed workload (time per training step and per epoch of training, for
every backend, PyTorch CPU and scikit-learn, with speedups over ``numpy``), one
summary figure, and a few sentences written from the same numbers.
"""
from __future__ import annotations

import math

import pandas as pd

from fastmlp.harness import plots, tables, workloads

#: Display names of the tools beside the backends (``compare.TOOLS`` keys -> short).
SHORT = {"PyTorch CPU": "PyTorch CPU", "scikit-learn MLPClassifier": "scikit-learn"}
TITLES = {"xor": "XOR", "spiral": "spiral", "digits": "digits", "mnist": "MNIST shape"}
#: Slowest over fastest BLAS-bound MNIST step below which the tools count as level.
CLOSE = 1.5


def frame(df, others, epoch_rows, backend_names):
    """One row per workload and tool: step and epoch medians, quartiles and statuses."""
    rows = []
    for name, (sizes, batch, _, _) in workloads.NETWORKS.items():
        steps = {r["tool"]: r for r in others if r["workload"].split()[0] == name}
        for b in backend_names:
            hit = df[(df.group == "step") & (df.name == name) & (df.dtype == "float32")
                     & (df.backend == b)]
            steps[f"fastmlp {b}"] = hit.iloc[0].to_dict() if len(hit) else {"status": "n/a"}
        epochs = {r["tool"]: r for r in epoch_rows if r["workload"] == name}
        for tool in [f"fastmlp {b}" for b in backend_names] + list(SHORT):
            step, epoch = steps.get(tool, {"status": "n/a"}), epochs.get(tool, {"status": "n/a"})
            rows.append(dict(workload=name, network=f"{'-'.join(map(str, sizes))} b{batch}",
                             tool=SHORT.get(tool, tool.removeprefix("fastmlp ")),
                             **_cells("step", step), **_cells("epoch", epoch),
                             steps=epoch.get("steps")))
    out = pd.DataFrame(rows)
    measured = {name for name, part in out.groupby("workload")
                if part[["step_s", "epoch_s"]].notna().to_numpy().any()}
    out = out[out.workload.isin(measured)].reset_index(drop=True)  # quick mode: only some
    for kind in ("step", "epoch"):
        ref = out[out.tool == "numpy"].set_index("workload")[f"{kind}_s"]
        out[f"{kind}_x"] = out.workload.map(ref) / out[f"{kind}_s"]
    return out


def _cells(kind, row):
    ok = row.get("status") == "ok"
    return {f"{kind}_s": row["median_s"] if ok else math.nan,
            f"{kind}_q1": row.get("q1_s", math.nan) if ok else math.nan,
            f"{kind}_q3": row.get("q3_s", math.nan) if ok else math.nan,
            f"{kind}_status": row.get("status", "n/a")}


def markdown(summary, out):
    """The opening section's Markdown; writes ``summary.png`` into ``out``."""
    figure = plots.summary(summary, out / "summary.png", TITLES)
    parts = ["## The answer: which tool trains the seed's MLPs fastest\n",
             "float32, medians of this run (spread: the figure's bars span the quartiles). "
             "A step is one `make_step` call (forward, backward and the optimizer update on "
             "one batch); an epoch is one pass of `fit` over the data set in shuffled "
             "mini-batches (XOR's 4 points, the spiral's 300, the digits' 1,347 training "
             "images, the MNIST sample's 4,000), with each batch gathered and its loss "
             "checked. PyTorch CPU and scikit-learn (`partial_fit`) run the same networks, "
             "batches and optimizers (scikit-learn: always Adam).\n",
             f"![summary]({figure})\n", *sentences(summary)]
    for name, part in summary.groupby("workload", sort=False):
        steps = part.steps.dropna()
        count = int(steps.iloc[0]) if len(steps) else 0
        per = f" ({count} step{'s' if count > 1 else ''})" if count else ""
        table = pd.DataFrame({
            "tool": part.tool,
            "time per step": [_time(r, "step") for r in part.itertuples()],
            "step vs numpy": part.step_x.map(tables.ratio),
            f"time per epoch{per}": [_time(r, "epoch") for r in part.itertuples()],
            "epoch vs numpy": part.epoch_x.map(tables.ratio)})
        parts += [f"\n**{TITLES[name]}** {part.network.iloc[0]}:\n", tables.markdown(table)]
    return "\n".join(parts) + "\n"


def _time(row, kind):
    value = getattr(row, f"{kind}_s")
    return tables.seconds(value) if not math.isnan(value) else getattr(row, f"{kind}_status")


def _best(part, kind):
    ok = part[part[f"{kind}_s"].notna()]
    return ok.loc[ok[f"{kind}_s"].idxmin()] if len(ok) else None


def _x(a, b):
    return f"{a / b:,.0f}x" if a / b >= 100 else f"{a / b:.2g}x"


def sentences(summary):
    """Three to five sentences from the numbers: who wins where, by how much, and why."""
    out, by = [], dict(tuple(summary.groupby("workload", sort=False)))
    wins = []
    for name, part in by.items():
        best = _best(part, "step")
        if best is not None:
            wins.append(f"{TITLES[name]} `{best.tool}` ({tables.seconds(best.step_s)}"
                        + (f", {best.step_x:.3g}x numpy" if best.tool != "numpy" else "") + ")")
    if wins:
        out.append("Fastest training step: " + "; ".join(wins) + ".")
    tiny = [(n, by[n]) for n in ("xor", "spiral") if n in by]
    for name, part in tiny[-1:]:
        best, torch = _best(part, "step"), part[part.tool == "PyTorch CPU"].step_s
        if best is not None and len(torch) and not math.isnan(torch.iloc[0]):
            out.append(f"On the tiny networks a step is a few microseconds of arithmetic, so "
                       "its cost is calls and passes over memory, which one compiled call "
                       f"removes: on {TITLES[name]} `{best.tool}` is "
                       f"{_x(torch.iloc[0], best.step_s)} faster than PyTorch CPU, whose "
                       "every operator is a dispatched call.")
    if "mnist" in by:
        ok = by["mnist"][by["mnist"].step_s.notna() & (by["mnist"].tool != "scikit-learn")]
        if len(ok) > 1:
            fast, slow = ok.loc[ok.step_s.idxmin()], ok.loc[ok.step_s.idxmax()]
            spread = slow.step_s / fast.step_s
            out.append("On the MNIST shape (784-512-512-10, batch 256) a step is eight matrix "
                       "products that every tool hands to BLAS: "
                       f"`{fast.tool}` {tables.seconds(fast.step_s)} to `{slow.tool}` "
                       f"{tables.seconds(slow.step_s)} ({_x(slow.step_s, fast.step_s)}), "
                       + ("close, as steps bound by the same BLAS should be." if spread < CLOSE
                          else "wider apart than steps bound by the same BLAS should be: "
                               "other work on the machine took cores from some of them (see "
                               "the GEMM peak at the start and end of the run, below)."))
    epoch_wins = [_best(part, "epoch") for part in by.values()]
    epoch_wins = [b for b in epoch_wins if b is not None]
    if epoch_wins:
        xor = by.get("xor")
        best = _best(xor, "epoch") if xor is not None else None
        overhead = ""
        if best is not None and not math.isnan(best.step_s):
            overhead = (f"; on XOR an epoch of `{best.tool}`'s `fit` takes "
                        f"{_x(best.epoch_s, best.step_s)} its single step: gathering the "
                        "batch, checking the loss and counting accuracy are Python work that "
                        "outweighs a microsecond step")
        names = ", ".join(f"{TITLES[b.workload]} `{b.tool}`" for b in epoch_wins)
        out.append(f"Fastest epoch of training: {names}{overhead}.")
    return [" ".join(out) + "\n"] if out else []
