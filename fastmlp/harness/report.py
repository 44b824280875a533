"""``fastmlp report``: speed, epochs, time to accuracy, the seed's experiments, cold start
and convergence, written to ``reports/<name>/`` as ``report.md``, ``details.md`` and
``report.html``.

Every finished case or training run is saved at once (see ``store``); a rerun
with the same output directory and mode skips what is already there, so an
interrupted report resumes where it stopped.
"""
from __future__ import annotations

import time
from pathlib import Path

from fastmlp.harness import compare, epochs, html, machine, render, seed, speed, tables, workloads
from fastmlp.harness import convergence as conv
from fastmlp.harness import time_to_accuracy as tta
from fastmlp.harness.store import ResultStore, write_atomic

BUDGET_S = {"quick": 0.03, "full": 0.2}  # timing budget per case and backend
QUICK_WORKLOADS = ("xor", "spiral")  # the comparisons and epochs of --quick


def convergence_jobs(quick, backend):
    """``(key, callable)`` pairs; each callable returns a JSON-able result."""
    jobs = []
    for name in ("spiral", "digits", "mnist"):
        task = conv.quick_settings(conv.TASKS[name]) if quick else conv.TASKS[name]
        for opt in conv.OPTIMIZERS:
            jobs.append((f"{name}/{opt}", lambda n=name, t=task, o=opt: _train(n, t, o, backend)))
    xor = dict(conv.XOR, seeds=3, steps=200) if quick else conv.XOR
    jobs += [(f"xor/{act}/{opt}", lambda o=opt, a=act: conv.xor_success(o, backend, a, xor))
             for act in xor["activations"] for opt in conv.OPTIMIZERS]
    settings = dict(conv.AGREEMENT, epochs=1) if quick else conv.AGREEMENT
    jobs += [(f"agreement/{dt}", lambda dt=dt: conv.agreement(
        conv.available_for_agreement(), dt, settings)) for dt in ("float64", "float32")]
    return jobs


_data_cache = {}


def _train(name, task, opt, backend):
    if name not in _data_cache:
        try:
            _data_cache[name] = conv.load(name)
        except FileNotFoundError as error:
            _data_cache[name] = error
    data = _data_cache[name]
    if isinstance(data, FileNotFoundError):
        return dict(dataset=name, optimizer=opt, not_run=f"not run: no MNIST files ({data})")
    return conv.train(name, task, opt, backend, data)


def run(out="reports/latest", quick=False, only=None, fresh=False, convergence_backend="auto",
        progress=True):
    """Make the whole report; returns the path of ``report.md``.

    ``convergence_backend="auto"`` trains on the fastest available backend (the
    agreement section checks that every backend gives the same curves); the seed's
    experiments run on it too. Quick mode skips the cold-start subprocesses (a cold
    Numba compile takes many seconds) and cuts every experiment down. In full mode the
    cold starts and the untimed sections (seed, convergence) run first, while a second
    process compiles the speed cases' Numba kernels into its disk cache on the other core
    (``speed.precompiled``); the timed sections follow, with the kernels cached.
    """
    from tqdm import tqdm

    if convergence_backend == "auto":
        convergence_backend = conv.fastest_backend()
    started = time.perf_counter()
    mode = "quick" if quick else "full"
    out = Path(out)
    store = ResultStore(out, mode, fresh)
    store.save_section("machine", machine.info())
    cases = workloads.suite(quick)
    status = speed.backend_status()
    cold, warm = ([], []) if quick else _cold_start_jobs(status)
    # Untimed work and the cold-start children (one core each) first, while a second
    # process compiles the JIT backends' kernels for the speed cases (speed.precompiled).
    before = [("coldstart", cold), ("seed", seed.jobs(convergence_backend, quick)),
              ("convergence", convergence_jobs(quick, convergence_backend))]
    after = [("coldstart", warm),
             ("compare", [("rows", lambda: compare.run(BUDGET_S[mode], QUICK_WORKLOADS if quick
                                                       else compare.WORKLOADS))]),
             ("epochs", [("rows", lambda: epochs.run(
                 QUICK_WORKLOADS if quick else tuple(workloads.NETWORKS), BUDGET_S[mode]))]),
             ("time_to_accuracy", tta.jobs(quick))]
    total = len(cases) + sum(len(jobs) for _, jobs in before + after)
    used = [] if quick else [b for b, (ok, _) in status.items()
                             if ok and (only is None or b in only)]
    results = {}
    with tqdm(total=total, desc=f"fastmlp report ({mode})", disable=not progress,
              unit="case") as bar:
        with speed.precompiled(used) as compiling:  # a child per JIT backend among them
            for name, jobs in before:
                results[name] = _run_jobs(store, mode, name, jobs, bar)
            if compiling:
                bar.set_postfix_str("waiting for the kernels compiling beside", refresh=True)
        speed.run_speed(cases, store, BUDGET_S[mode], bar, only)
        for name, jobs in after:
            results[name] = _run_jobs(store, mode, name, jobs, bar)
    store.save_section("machine", dict(store.section("machine"), load_at_end=machine.load()))
    runs = _section(store, "runs", mode)
    runs["results"][str(len(runs["results"]))] = time.perf_counter() - started
    store.save_section("runs", runs)  # seconds of each (resumed) run, summed in the text
    pages = render.render(out, store, status, results, quick, list(runs["results"].values()),
                          convergence_backend)
    for name, text in zip(("report.md", "details.md"), pages):
        write_atomic(out / name, text)
    write_atomic(out / "report.html", html.page(pages, out, "fastmlp report"))
    return out / "report.md"


def _cold_start_jobs(status):
    """``(cold, warm)``: jobs of a fresh process per backend, network and dtype, with an empty
    Numba cache, and those of each JIT backend with its disk cache warm (filled by the
    report's compile: run them after it). Keys are ``"<backend> | <network> <dtype>"``."""
    cold = [(b, {}) for b in ["numpy"] + tables.compiled(status)]
    warm = [(f"{b}, warm disk cache", {"fresh_cache": False})
            for b in speed.JIT_BACKENDS if status.get(b, (False,))[0]]
    return tuple([(f"{name} | {net} {dt}", lambda b=name.split(",")[0], n=net, d=dt, kw=kw:
                   speed.cold_start(b, n, d, **kw))
                  for net in speed.COLD_NETWORKS for dt in workloads.DTYPES for name, kw in runs]
                 for runs in (cold, warm))


def _run_jobs(store, mode, section, jobs, bar):
    """Run the jobs of a section not already stored, saving after each; its results."""
    data = _section(store, section, mode)
    for key, job in jobs:
        if key not in data["results"]:
            bar.set_postfix_str(f"{section} {key}"[-60:], refresh=True)
            data["results"][key] = job()
            store.save_section(section, data)
        bar.update(1)
    return data["results"]


def _section(store, name, mode):
    data = store.section(name)
    if not data or data.get("mode") != mode:
        data = {"mode": mode, "results": {}}
    return data
