"""From result rows to pandas tables: speedups, peak fractions, targets, Markdown."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fastmlp.harness.speed import SLOW_BACKENDS
from fastmlp.harness.workloads import FITS, NETWORKS, fit_keys

REFERENCE, NAIVE = "numpy", "python"


def frame(rows):
    """All rows as a DataFrame with GFLOP/s, fraction of peak and speedups added."""
    df = pd.DataFrame(rows)
    for column in ("median_s", "q1_s", "q3_s", "iqr_s", "min_s", "first_call_s", "setup_s"):
        if column not in df:
            df[column] = np.nan
    df["first_use_s"] = df["setup_s"] + df["first_call_s"]
    df["gflops"] = df["flops"] / df["median_s"] / 1e9
    peak = gemm_peak(df)
    df["peak_fraction"] = df["gflops"] / peak if peak else np.nan
    for ref, column in ((REFERENCE, "x_numpy"), (NAIVE, "x_python")):
        base = df[(df.backend == ref) & (df.status == "ok")].set_index("key")["median_s"]
        df[column] = df["key"].map(base) / df["median_s"]
    return df


def gemm_peak(df, name=None):
    """GFLOP/s of ``numpy.matmul`` float32: the roofline of this run.

    With ``name`` (``gemm_peak`` or ``gemm_peak_end``), that reference case
    alone; otherwise the best rate of every NumPy float32 matmul in the run, so
    that a slow spell during the reference case cannot put kernels above 100%.
    """
    names = [name] if name else ["gemm_peak", "gemm_peak_end", "matmul"]
    hit = df[df.name.isin(names) & (df.status == "ok") & (df.backend == REFERENCE)
             & (df.dtype == "float32")]
    return float((hit["flops"] / hit["median_s"]).max() / 1e9) if len(hit) else None


def wide(df, backends_all, status, value="median_s", groups=None, fmt=None):
    """One row per case, one column per registered backend; text cells for what did not run."""
    sub = df if groups is None else df[df.group.isin(groups)]
    cases = sub.drop_duplicates("key")[["key", "name", "size", "dtype"]].set_index("key")
    out = cases.copy()
    for backend in backends_all:
        ok, reason = status[backend]
        cells = {}
        for key in cases.index:
            hit = sub[(sub.key == key) & (sub.backend == backend)]
            if not ok:
                cells[key] = "unavailable"
            elif not len(hit):
                cells[key] = "n/a"
            elif hit.status.iloc[0] != "ok":
                cells[key] = hit.status.iloc[0]
            else:
                cells[key] = (fmt or str)(hit[value].iloc[0])
        out[backend] = pd.Series(cells)
    return out.reset_index(drop=True)


def seconds(value):
    """A time with a unit a reader takes in at a glance."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def ratio(value):
    return "-" if value is None or not np.isfinite(value) else f"{value:.3g}x"


def compiled(status):
    """Available backends other than the naive and the reference ones."""
    return [n for n, (ok, _) in status.items() if ok and n not in (REFERENCE, *SLOW_BACKENDS)]


def _ok_row(df, key, backend):
    """The row of case ``key`` on ``backend`` if it ran, else None."""
    hit = df[(df.key == key) & (df.backend == backend) & (df.status == "ok")]
    return hit.iloc[0] if len(hit) else None


def _median(df, key, backend):
    row = _ok_row(df, key, backend)
    return None if row is None else float(row["median_s"])


#: The speed targets of the compiled backends: (label, numerator key, numerator backend,
#: denominator key, denominator backend, goal, direction). Ratios are of times.
TARGETS = (
    ("spiral 2-100-3 b300 f32 Adam step, speedup over numpy", "step/spiral/2-100-3 b300 adam/f32",
     REFERENCE, "step/spiral/2-100-3 b300 adam/f32", None, 10.0, ">="),
    ("XOR 2-2-1 b4 f32 Adam step, speedup over numpy", "step/xor/2-2-1 b4 adam/f32",
     REFERENCE, "step/xor/2-2-1 b4 adam/f32", None, 30.0, ">="),
    ("MNIST 784-512-512-10 b256 f32 RMSprop step / its 8 GEMMs alone in numpy",
     "step/mnist/784-512-512-10 b256 rmsprop/f32", None,
     "reference/mnist_gemms/784-512-512-10 b256/f32", REFERENCE, 1.2, "<="),
    ("own blocked matmul 256x784x512 f32, fraction of numpy.matmul GFLOP/s",
     "kernel/matmul/256x784x512/f32", REFERENCE, "kernel/matmul_blocked/256x784x512/f32", None,
     0.6, ">="),
)


def _fit_over_step(name, batch):
    fit, step = fit_keys(name, batch)
    network = "-".join(map(str, NETWORKS[name][0]))
    return (f"{name} {network} b{batch} f32 Adam, fit per batch / step", fit, None, step, None,
            FIT_OVER_STEP, "<=")


#: Per batch, ``fit`` may cost at most this many times the same backend's step.
FIT_OVER_STEP = 1.15
#: The targets through ``MLP.fit`` (cases ``fit/...``, per batch): the step targets' speedups
#: over numpy, and ``FIT_OVER_STEP`` on every ``FITS`` workload.
FIT_TARGETS = (
    ("spiral 2-100-3 b300 f32 Adam fit, speedup over numpy", fit_keys("spiral", 300)[0],
     REFERENCE, fit_keys("spiral", 300)[0], None, 10.0, ">="),
    ("XOR 2-2-1 b4 f32 Adam fit, speedup over numpy", fit_keys("xor", 4)[0], REFERENCE,
     fit_keys("xor", 4)[0], None, 30.0, ">="),
) + tuple(_fit_over_step(name, batch) for name, batch, _ in FITS)
TARGETS += FIT_TARGETS


def target_keys():
    """Keys of the cases the targets need."""
    return {key for t in TARGETS for key in (t[1], t[3])}


def targets(df, status):
    """One row per compiled backend and target: the measured ratio and PASS/FAIL, and
    ``low``-``high``, the ratio of the two cases' quartiles (the run's spread)."""
    rows = []
    for backend in compiled(status):
        for label, num_key, num_b, den_key, den_b, goal, op in TARGETS:
            num_b, den_b = num_b or backend, den_b or backend
            num, den = _median(df, num_key, num_b), _median(df, den_key, den_b)
            row = _target_row(backend, label, num / den if num and den else None, op, goal)
            num_q, den_q = _quartiles(df, num_key, num_b), _quartiles(df, den_key, den_b)
            if num_q and den_q:
                row.update(low=num_q[0] / den_q[1], high=num_q[1] / den_q[0],
                           spread_of="the cases' quartiles give")
            rows.append(row)
    return pd.DataFrame(rows)


def _quartiles(df, key, backend):
    row = _ok_row(df, key, backend)
    if row is None or row[["q1_s", "q3_s"]].isna().any():
        return None
    return float(row["q1_s"]), float(row["q3_s"])


def shortfalls(frame, machine=None, drift=None):
    """A line per target not met: what this run measured that made it fall short. The
    spread (``low``-``high``) reaching the goal; a twin backend meeting it on this machine
    (then, the spread short of the goal, the backend's own code falls short, not the
    machine); ``drift``, the reference GEMM's rate at the end of the run over its start
    (a host slowing down); and, when no backend meets it, the machine's parts the kernels
    took (``machine``: ``harness.machine.info()``)."""
    lines = []
    failed = frame[frame.verdict == "FAIL"] if len(frame) else frame
    for _, row in failed.iterrows():
        same = frame[(frame.target == row.target) & (frame.backend != row.backend)]
        met = same[same.verdict == "PASS"]
        why = []
        low, high = row.get("low"), row.get("high")
        noise = low is not None and np.isfinite(low) and low <= row.bound <= high
        if noise:
            why.append(f"within this run's spread ({row.get('spread_of', 'quartiles')} "
                       f"{ratio(low)}-{ratio(high)})")
        for _, twin in met.iterrows():  # blamed on the code only where noise cannot explain
            why.append(f"{twin.backend} meets it here ({ratio(twin.value)})" + (
                "" if noise else f": {row.backend}'s own code falls short, not the machine"))
        if drift is not None and drift < 0.9:
            why.append(f"the host slowed during the run (numpy.matmul's reference GEMM ran "
                       f"at {drift:.0%} of its start rate at the end)")
        if not len(met):
            why.append("no compiled backend meets it on this machine" + _machine_parts(machine))
        lines.append(f"{row.backend}: {row.target}: " + "; ".join(why))
    return lines


def _machine_parts(machine):
    """`` (CPU, the product paths' kind, OpenBLAS's kernels)`` of ``machine.info()``."""
    if not machine:
        return ""
    parts = [machine.get("cpu")]
    kind = (machine.get("product_paths") or {}).get("kind")
    if kind:
        parts.append(f"{kind} kernels")
    kernels = {b.get("architecture") for b in machine.get("blas") or ()
               if b.get("internal_api") == "openblas"} - {None}
    if kernels:  # numpy's and scipy's copies, each choosing its kernels
        parts.append(f"OpenBLAS's {'/'.join(sorted(kernels))} kernels")
    return " (" + ", ".join(p for p in parts if p) + ")"


def drift(df):
    """numpy.matmul's reference GEMM rate at the end of the run over its start, or None."""
    start, end = gemm_peak(df, "gemm_peak"), gemm_peak(df, "gemm_peak_end")
    return end / start if start and end else None


def target_lines(frame):
    """``targets``' lines, those not measured in this run gathered into one line."""
    if not len(frame):
        return "no compiled backend available"
    missing = frame[frame.verdict == "not measured"]
    lines = list(frame[frame.verdict != "not measured"].line)
    if len(missing):
        lines.append("not measured in this run (its cases did not run): "
                     + "; ".join(dict.fromkeys(missing.target)))
    return "\n".join(lines)


def repeated_targets(runs):
    """``targets`` measured several times: the median ratio, its range and the verdict of
    the median, one row per backend and target."""
    rows = []
    for (backend, label), group in pd.concat(runs).groupby(["backend", "target"], sort=False):
        values = group["value"].dropna()
        spread = (f", range {ratio(values.min())}-{ratio(values.max())} over {len(values)} runs"
                  if len(values) > 1 else "")
        row = _target_row(backend, label, float(values.median()) if len(values) else None,
                          group["op"].iloc[0], group["bound"].iloc[0], f"median{spread}; ")
        if len(values) > 1:
            row.update(low=float(values.min()), high=float(values.max()),
                       spread_of="the repeats range")
        rows.append(row)
    return pd.DataFrame(rows)


def _target_row(backend, label, value, op, bound, how=""):
    """A target's row: its ratio ``value`` (None: not measured) against ``op bound``."""
    passed = None if value is None else (value >= bound if op == ">=" else value <= bound)
    verdict = "not measured" if passed is None else ("PASS" if passed else "FAIL")
    goal = f"{op} {bound:g}"
    return dict(backend=backend, target=label, value=value, op=op, bound=bound, goal=goal,
                verdict=verdict,
                line=f"{backend}: {label} = {ratio(value)} ({how}target {goal}): {verdict}")


def fit_vs_step(df, names):
    """One row per ``FITS`` workload and backend of ``names``: the step, ``fit`` per batch,
    their ratio and ``fit``'s speedup over numpy (cells ``-`` where a case did not run)."""
    rows = []
    for name, batch, epochs in FITS:
        fit_key, step_key = fit_keys(name, batch)
        ref = _median(df, fit_key, REFERENCE)
        for backend in names:
            fit, step = _median(df, fit_key, backend), _median(df, step_key, backend)
            if fit is None and step is None:
                continue
            rows.append({"workload": fit_key.split("/", 1)[1], "epochs a call": epochs,
                         "backend": backend, "step": seconds(step),
                         "fit per batch": seconds(fit),
                         "fit / step": ratio(fit / step if fit and step else None),
                         "fit x numpy": ratio(ref / fit if ref and fit else None)})
    return pd.DataFrame(rows)


def side_by_side(df, status):
    """Compiled backends' times per case, and the ratio of each to the first one."""
    ok = df[(df.status == "ok") & df.backend.isin(compiled(status))]
    names = [n for n in compiled(status) if n in set(ok.backend)]  # those timed in this run
    if len(names) < 2:
        return None
    table = ok.pivot_table(index=["key"], columns="backend", values="median_s")
    table = table.dropna()
    out = pd.DataFrame({"case": table.index})
    for n in names:
        out[n] = [seconds(v) for v in table[n]]
    for n in names[1:]:
        out[f"{n} / {names[0]}"] = [ratio(v) for v in (table[n] / table[names[0]]).values]
    return out


def markdown(df, index=False):
    """A GitHub Markdown table (without the optional ``tabulate`` dependency)."""
    if df is None or not len(df):
        return "_(no rows)_"
    if index:
        df = df.reset_index()
    cells = [[str(v).replace("|", "\\|") for v in row] for row in df.astype(object).values]
    head = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)
