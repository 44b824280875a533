"""The ``fastmlp`` command: ``fastmlp report`` and the ``fastmlp bench`` regression gate.

Exit status: 0 success, 1 a regression beyond ``--fail-above``, 2 a usage error
or an unusable baseline (with the reason on stderr, never a traceback).
"""
from __future__ import annotations

import argparse
import sys

from fastmlp import backends


def percent(text):
    """``"15%"`` or ``"0.15"`` -> 0.15."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage like 15% or 0.15, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"the threshold must be >= 0, got {text!r}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def backend_list(text):
    names = [n for n in text.replace(",", " ").split() if n]
    unknown = [n for n in names if n not in backends.MODULES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown backend(s) {unknown}; choose from "
                                         f"{list(backends.MODULES)}")
    return names


def parser():
    p = argparse.ArgumentParser(prog="fastmlp", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="speed, cold start and convergence report")
    r.add_argument("--quick", action="store_true", help="tiny cases and few epochs (seconds)")
    r.add_argument("--out", default="reports/latest", help="output directory")
    r.add_argument("--backends", type=backend_list, default=None,
                   help="comma-separated backends to time (default: all available)")
    r.add_argument("--fresh", action="store_true",
                   help="start over instead of resuming finished cases in --out")
    r.add_argument("--convergence-backend", default="auto",
                   help="backend of the convergence runs (default: the fastest available)")
    r.add_argument("--no-progress", action="store_true")
    b = sub.add_parser("bench", help="regression gate: save or compare a baseline")
    b.add_argument("--save", metavar="NAME", help="save this run as baseline NAME")
    b.add_argument("--compare", metavar="NAME", help="compare this run with baseline NAME")
    b.add_argument("--fail-above", type=percent, default=0.15, metavar="PCT",
                   help="fail when a case is slower by more than this (default 15%%)")
    b.add_argument("--metric", choices=("normalized", "seconds"), default="normalized",
                   help="compare times normalised by the calibration kernel timed in the same "
                        "run (default; carries across machines) or raw seconds")
    b.add_argument("--stat", choices=("min", "median"), default="min",
                   help="statistic over timing rounds (default min: the steadiest on a "
                        "shared machine)")
    b.add_argument("--quick", action="store_true", help="the quick suite (seconds)")
    b.add_argument("--backends", type=backend_list, default=None)
    b.add_argument("--dir", default=None, help="baseline directory (default .benchmarks/fastmlp)")
    b.add_argument("--show", choices=("moved", "all"), default="moved")
    b.add_argument("--no-progress", action="store_true")
    t = sub.add_parser("targets", help="measure and print only the four speed targets")
    t.add_argument("--backends", type=backend_list, default=None)
    t.add_argument("--repeat", type=positive_int, default=3,
                   help="independent measurements of each ratio (default 3): the median "
                        "and the range are printed")
    t.add_argument("--no-progress", action="store_true")
    return p


def targets(args):
    from tqdm import tqdm

    from fastmlp.harness import gate, speed, tables, workloads

    cases = [c for c in workloads.suite() if c.key in tables.target_keys()]
    runs = []
    with tqdm(total=len(cases) * args.repeat, desc="fastmlp targets",
              disable=args.no_progress) as bar:
        for _ in range(args.repeat):  # whole repeats: a slow spell hits one of them
            rows = gate.Rows()
            speed.run_speed(cases, rows, 0.5, bar, args.backends)
            runs.append(tables.targets(tables.frame(rows.best()), speed.backend_status()))
    if not len(runs[0]):
        print("no compiled backend available")
    else:
        print("\n".join(tables.repeated_targets(runs).line))
    return 0


def report(args):
    from fastmlp.harness import report as rep

    path = rep.run(args.out, quick=args.quick, only=args.backends, fresh=args.fresh,
                   convergence_backend=args.convergence_backend, progress=not args.no_progress)
    print(f"report written to {path}")
    return 0


def bench(args):
    from tqdm import tqdm

    from fastmlp.harness import gate, workloads

    if not (args.save or args.compare):
        print("fastmlp bench: give --save NAME and/or --compare NAME", file=sys.stderr)
        return 2
    directory = args.dir or gate.DEFAULT_DIR
    metric = gate.field(args.metric, args.stat)
    baseline = gate.load(args.compare, directory) if args.compare else None  # fail early
    cases = workloads.suite(args.quick)
    with tqdm(total=len(cases), desc="fastmlp bench", unit="case",
              disable=args.no_progress) as bar:
        current = gate.measure(cases, quick=args.quick, only=args.backends, progress=bar)
    if args.save:
        print(f"baseline saved to {gate.save(current, args.save, directory)}")
    if baseline is None:
        return 0
    ok, rows = gate.compare(baseline, current, args.fail_above, metric)
    print("\n".join(gate.format_rows(rows, metric, args.fail_above, args.show)))
    return 0 if ok else 1


def main(argv=None):
    args = parser().parse_args(argv)
    from fastmlp.harness.gate import GateError

    try:
        return {"report": report, "bench": bench, "targets": targets}[args.command](args)
    except GateError as error:
        print(f"fastmlp {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastmlp {args.command}: interrupted; finished cases are kept, rerun the same "
              "command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
