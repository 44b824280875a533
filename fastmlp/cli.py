"""The ``fastmlp`` command: ``fastmlp report``, ``fastmlp targets``, the ``fastmlp bench``
regression gate and ``fastmlp warmup`` (fills the JIT backends' disk cache).

Exit status: 0 success, 1 a case slower beyond ``--fail-above`` (its whole interval) or a
memory regression, 2 a usage error, an unusable REF or baseline (one line on stderr,
never a traceback).
"""
from __future__ import annotations

import argparse
import math
import sys

from fastmlp import backends
from fastmlp.harness.errors import GateError

#: Timing processes per side of a gate run, and the fewest that give a 95% interval.
GATE_PROCESSES, MIN_PROCESSES = 10, 6


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit status 2), as every other error of the command."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def percent(text):
    """``"15%"`` or ``"0.15"`` -> 0.15."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
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
    p = Parser(prog="fastmlp", description=" ".join(__doc__.split("\n\n")[0].split()))
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
    b = sub.add_parser("bench", help="regression gate: against a commit, A/A, or a baseline")
    b.add_argument("--against", metavar="REF",
                   help="time git commit REF (built beside the working tree) and the working "
                        "tree in alternating processes, and compare")
    b.add_argument("--aa", action="store_true",
                   help="the working tree against itself: each case's noise floor")
    b.add_argument("--save", metavar="NAME", help="save this run's processes as baseline NAME")
    b.add_argument("--compare", metavar="NAME", help="compare this run with baseline NAME")
    b.add_argument("--json", metavar="PATH", help="also write the run in pytest-benchmark's "
                                                   "JSON format")
    b.add_argument("--fail-above", type=percent, default=0.15, metavar="PCT",
                   help="fail when a case is slower by more than this, its whole confidence "
                        "interval above it (default 15%%)")
    b.add_argument("--processes", type=positive_int, default=None, metavar="N",
                   help=f"timing processes per side (default {GATE_PROCESSES}, at least "
                        f"{MIN_PROCESSES}: fewer give no 95%% interval)")
    b.add_argument("--metric", choices=("normalized", "seconds"), default=None,
                   help="seconds, or times divided by the calibration case timed in the same "
                        "process (default: seconds, normalized with --compare)")
    b.add_argument("--stat", choices=("min", "median"), default="min",
                   help="each process's figure for a case: its fastest round (default; noise "
                        "only adds time) or its median round")
    b.add_argument("--quick", action="store_true", help="the quick suite (about a minute)")
    b.add_argument("--backends", type=backend_list, default=None)
    b.add_argument("-k", dest="cases", action="append", default=[], metavar="TEXT",
                   help="only cases whose id (key@backend) contains TEXT (repeatable)")
    b.add_argument("--dir", default=None,
                   help="baselines and REF worktrees (default .benchmarks/fastmlp)")
    b.add_argument("--show", choices=("moved", "all"), default="moved")
    b.add_argument("--no-progress", action="store_true")
    t = sub.add_parser("targets", help="measure and print only the speed targets (step and fit)")
    t.add_argument("--backends", type=backend_list, default=None)
    t.add_argument("--repeat", type=positive_int, default=3,
                   help="independent measurements of each ratio (default 3): the median "
                        "and the range are printed")
    t.add_argument("--no-progress", action="store_true")
    w = sub.add_parser("warmup", help="compile every kernel path into the JIT backends' disk "
                                      "cache (for CI images and first installs)")
    w.add_argument("--backends", type=backend_list, default=None,
                   help="comma-separated backends (default: the available JIT backends)")
    w.add_argument("--dtypes", type=dtype_list, default=("float32", "float64"),
                   help="comma-separated dtypes (default: float32,float64)")
    w.add_argument("-k", dest="only", action="append", default=[], metavar="TEXT",
                   help="only paths whose label contains TEXT (repeatable), e.g. "
                        "'layered' or 'narrow pair 2-3'")
    w.add_argument("--no-progress", action="store_true")
    return p


def dtype_list(text):
    names = [n for n in text.replace(",", " ").split() if n]
    unknown = [n for n in names if n not in ("float32", "float64")]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected float32 and/or float64, got {text!r}")
    return tuple(names)


def warmup(args):
    from fastmlp import warmup as warm

    try:
        warmed = warm.run(args.backends, args.dtypes, args.only, not args.no_progress)
    except ValueError as error:
        raise GateError(str(error)) from None
    print(f"warmed {len(warmed)} kernel paths" if warmed else
          "warmed nothing: no JIT backend or path asked for")
    return 0


def targets(args):
    from tqdm import tqdm

    from fastmlp.harness import machine, speed, tables, workloads
    from fastmlp.harness.store import Rows

    cases = [c for c in workloads.suite() if c.key in tables.target_keys()]
    runs = []
    with tqdm(total=len(cases) * args.repeat, desc="fastmlp targets",
              disable=args.no_progress) as bar:
        for _ in range(args.repeat):  # whole repeats: a slow spell hits one of them
            rows = Rows()
            speed.run_speed(cases, rows, 0.5, bar, args.backends)
            runs.append(tables.targets(tables.frame(rows.best()), speed.backend_status()))
    if not len(runs[0]):
        print("no compiled backend available")
    else:
        frame = tables.repeated_targets(runs)
        print("\n".join(frame.line))
        why = tables.shortfalls(frame, machine.info())
        if why:
            print("\nwhy a target fell short:\n" + "\n".join(f"- {line}" for line in why))
    return 0


def report(args):
    from fastmlp.harness import report as rep

    path = rep.run(args.out, quick=args.quick, only=args.backends, fresh=args.fresh,
                   convergence_backend=args.convergence_backend, progress=not args.no_progress)
    print(f"report written to {path}")
    return 0


def bench(args):
    from fastmlp.harness import gate_run

    modes = [m for m in ("against", "aa", "compare") if getattr(args, m)]
    if len(modes) > 1:
        raise GateError(f"give one of --against, --aa and --compare, not {' and '.join(modes)}")
    if not modes and not (args.save or args.json):
        raise GateError("give --against REF, --aa, --compare NAME, --save NAME or --json PATH")
    if (args.processes or GATE_PROCESSES) < MIN_PROCESSES:
        raise GateError(f"--processes must be at least {MIN_PROCESSES}, got {args.processes}: "
                        "fewer processes give no 95% interval")
    return gate_run.run(args, args.processes or GATE_PROCESSES)


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        return {"report": report, "bench": bench, "targets": targets,
                "warmup": warmup}[args.command](args)
    except GateError as error:
        print(f"fastmlp {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        what = ("nothing was written (a finished REF build is kept)" if args.command == "bench"
                else "finished cases are kept, rerun the same command to resume")
        print(f"fastmlp {args.command}: interrupted; {what}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
