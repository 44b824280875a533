"""``fastmlp bench``: the sides a run times, its processes, and what it prints and writes."""
from __future__ import annotations

import sys
from pathlib import Path

from fastmlp.harness import against, benchjson, gate

#: Seconds each case is timed for in one process: the interval narrows with more processes,
#: hardly with longer ones (the rounds of one process share its layout and its moment).
BUDGET_S = 0.05
HERE = "the working tree"


def _sides(args, root, directory):
    """``[(label, tree root)]``: REF then the working tree, or the working tree twice."""
    if args.against:
        tree = against.toplevel(root)
        ref = against.worktree(args.against, tree, directory,
                               say=lambda text: print(text, file=sys.stderr))
        label = f"REF {args.against} ({ref.name})"
        return [(label, ref / root.relative_to(tree)), (HERE, root)]
    if args.aa:
        return [("A", root), ("B", root)]
    return [(HERE, root)]


def run(args, processes):
    from tqdm import tqdm

    directory = Path(args.dir or gate.DEFAULT_DIR)
    baseline = gate.load(args.compare, directory) if args.compare else None  # fail early
    root = against.tree_root()
    sides = _sides(args, root, directory)
    options = dict(quick=args.quick, budget=BUDGET_S, only=args.backends, patterns=args.cases)
    with tqdm(total=processes * len(sides), desc="fastmlp bench", unit="process",
              disable=args.no_progress) as bar:
        runs = against.alternate(sides, processes, bar, **options)
    mine, names, result = runs[sides[-1][0]], [label for label, _ in sides], None
    if len(sides) == 2:
        result = gate.compare(runs[names[0]], mine, args.fail_above, True,
                              args.metric or "seconds", args.stat)
    elif baseline is not None:
        gate.check_cases(baseline, mine, args.compare)
        result = gate.compare(baseline["processes"], mine, args.fail_above, False,
                              args.metric or "normalized", args.stat)
        names = [f"baseline {args.compare}", HERE]
    if result is not None:
        print("\n".join(gate.lines(result, names, args.show)))
        if args.aa:
            print("\n".join(gate.noise_lines(result)))
    try:
        if args.save:
            doc = gate.document(mine, args.quick, against.commit(root))
            print(f"baseline saved to {gate.save(doc, args.save, directory)}")
        if args.json:
            print(f"pytest-benchmark JSON written to "
                  f"{benchjson.write(args.json, mine, result, BUDGET_S)}")
    except OSError as error:
        raise gate.GateError(f"cannot write {error.filename}: {error.strerror}") from None
    return 1 if result is not None and gate.failed(result) else 0
