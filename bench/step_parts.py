"""A training step's parts, timed apart: the whole ``make_step`` call, its compiled kernel
alone (the same arguments, no Python around it), the optimizer's ``next_args`` and, for
Numba, a do-nothing kernel taking the same arguments (its call overhead), through Numba's
dispatcher and specialised as the step is. Minimum over batches of 20 calls, so that a busy
machine's preemptions drop out; a profile of the kernel alone: ``--loop N`` then ``perf``.

    .venv/bin/python bench/step_parts.py --backend cython --network digits [--batch 200]
    perf record -o step.data .venv/bin/python bench/step_parts.py --loop 300000
"""
import argparse
import time

import numpy as np
from numba import njit

from fastmlp import MLP, optim
from fastmlp.harness import workloads


def best_us(call, batches=300, size=20):
    """The fastest batch's microseconds per call."""
    for _ in range(100):
        call()
    fastest = float("inf")
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(size):
            call()
        fastest = min(fastest, (time.perf_counter() - start) / size)
    return fastest * 1e6


def do_nothing(count):
    """A Numba kernel of ``count`` arguments returning 0.0."""
    names = ", ".join(f"a{i}" for i in range(count))
    namespace = {}
    exec(f"def do_nothing({names}):\n    return 0.0", namespace)
    return njit(namespace["do_nothing"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="cython", choices=["numba", "cython"])
    parser.add_argument("--network", default="digits", choices=sorted(workloads.NETWORKS))
    parser.add_argument("--batch", type=int, help="rows a step (default: the network's)")
    parser.add_argument("--loop", type=int, default=0, help="then call the kernel N times")
    args = parser.parse_args()
    sizes, batch, name, output = workloads.NETWORKS[args.network]
    batch = args.batch or batch
    model = MLP(sizes, output=output, backend=args.backend, dtype="float32", seed=0)
    X, y = workloads._batch(sizes, batch, np.dtype("float32"), output)
    optimizer, seen = optim.get(name, lr=1e-3), {}
    specialise = model.backend.specialise

    def capture(kernel, arrays, extra):  # the kernel and arguments the step binds
        seen.update(specialised=specialise(kernel, arrays, extra), arrays=arrays, extra=extra)
        return seen["specialised"]

    model.backend.specialise = capture
    step = model.make_step(X, y, optimizer)
    arrays, extra, kernel = seen["arrays"][:8], seen["extra"], seen["specialised"]
    next_args = optimizer.fused_step_args("timed apart", arrays[2])  # theta's own state
    arguments = arrays + tuple(next_args()) + tuple(extra)
    parts = dict(step=best_us(step), kernel=best_us(lambda: kernel(*arguments)),
                 next_args=best_us(next_args))
    if args.backend == "numba":
        nothing = do_nothing(len(arguments))
        nothing(*arguments)
        bound = specialise(nothing, seen["arrays"], extra)
        parts.update(nothing_dispatched=best_us(lambda: nothing(*arguments)),
                     nothing_specialised=best_us(lambda: bound(*arguments)))
    print(f"{args.backend} {args.network} b{batch} float32, us a call: "
          + ", ".join(f"{part} {us:.2f}" for part, us in parts.items()))
    for _ in range(args.loop):
        kernel(*arguments)


if __name__ == "__main__":
    main()
