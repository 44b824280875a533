"""fastmlp.sklearn.MLPClassifier against scikit-learn's MLPClassifier on digits, side by side.

Both get the same hyper-parameters (hidden (100,), adam, alpha 1e-4, learning rate 1e-3,
the given batch size and epochs, the stopping rule off so that both run every epoch)
and the same random_state in each run, on the same float32 arrays
(``fastmlp.datasets.digits``: 1347 training rows, 450 test rows). Runs alternate between
the tools, each run's order reversed from the last, so that a busy spell of a shared
machine hits all alike; the first fit of each fastmlp backend (Numba's compile) is timed
apart and not counted. A row "steps only" times the same number of bare training steps
(``MLP.make_step`` on each batch of the rows shuffled once): what fastmlp's steps cost
without the estimator around them. ``--partial-fit`` times ``partial_fit`` called once
per batch instead of ``fit`` (streaming use: every call validates its input).

BLAS and OpenMP run single-threaded unless ``--threads`` says otherwise: on a shared
2-core machine their spinning threads contend, and both tools ran 6-11x slower with the
libraries' defaults (``--threads 0``), scikit-learn the more.

    .venv/bin/python bench/bench_sklearn.py --runs 5 --epochs 40 --batch-size 32
    .venv/bin/python bench/bench_sklearn.py --runs 5 --epochs 5 --batch-size 32 --partial-fit
"""
import argparse
import statistics
import time
import warnings

from sklearn.neural_network import MLPClassifier as SklearnMLP
from threadpoolctl import threadpool_limits

import numpy as np

from fastmlp import MLP, backends, datasets, optim
from fastmlp.sklearn import MLPClassifier


def settings(epochs, batch_size, seed):
    return dict(hidden_layer_sizes=(100,), solver="adam", alpha=1e-4, learning_rate_init=1e-3,
                batch_size=batch_size, max_iter=epochs, n_iter_no_change=epochs,
                random_state=seed)


def fit_and_score(estimator, data, partial):
    """(training seconds, test accuracy) of ``estimator`` on ``data``: one ``fit``, or
    ``max_iter`` passes of ``partial_fit`` calls, one a batch."""
    (X_train, y_train), (X_test, y_test) = data
    with warnings.catch_warnings():  # ConvergenceWarning; partial_fit's last, short batch
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        if partial:
            rows, classes = estimator.batch_size, np.unique(y_train)
            for _ in range(estimator.max_iter):
                for start in range(0, len(X_train), rows):
                    estimator.partial_fit(X_train[start:start + rows],
                                          y_train[start:start + rows], classes=classes)
        else:
            estimator.fit(X_train, y_train)
        seconds = time.perf_counter() - started
    return seconds, estimator.score(X_test, y_test)


def steps_only(backend, epochs, batch_size, data, seed):
    """(seconds, None) of the fit's training steps alone, each batch's step bound once."""
    (X_train, y_train), _ = data
    rows = min(200, len(X_train)) if batch_size == "auto" else batch_size
    order = np.random.default_rng(seed).permutation(len(X_train))
    X, Y = X_train[order], np.eye(10, dtype=np.float32)[y_train[order]]
    model = MLP([X.shape[1], 100, 10], backend=backend, dtype="float32", l2=1e-4 / rows,
                seed=seed)
    adam = optim.Adam()
    steps = [model.make_step(X[start:start + rows], Y[start:start + rows], adam)
             for start in range(0, len(X), rows)]
    started = time.perf_counter()
    for _ in range(epochs):
        for step in steps:
            step()
    return time.perf_counter() - started, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", default="32", help="an int or 'auto'")
    parser.add_argument("--backends", default=",".join(
        b for b in ("cython", "numba", "numpy") if backends.available()[b][0]))
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and OpenMP threads (0: the libraries' defaults)")
    parser.add_argument("--partial-fit", action="store_true",
                        help="time partial_fit once per batch (an int --batch-size) instead")
    args = parser.parse_args(argv)
    with threadpool_limits(args.threads or None):
        compare(args)


def compare(args):
    batch = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    data = datasets.digits("float32")
    tools = {"scikit-learn": lambda seed: fit_and_score(
        SklearnMLP(**settings(args.epochs, batch, seed)), data, args.partial_fit)}
    for name in args.backends.split(","):
        tools[f"fastmlp {name}"] = lambda seed, name=name: fit_and_score(
            MLPClassifier(backend=name, dtype="float32", **settings(args.epochs, batch, seed)),
            data, args.partial_fit)
        if not args.partial_fit:
            tools[f"  {name} steps only"] = lambda seed, name=name: steps_only(
                name, args.epochs, batch, data, seed)
    for tool in tools:
        if tool.startswith("fastmlp"):
            print(f"first fit, {tool}: {tools[tool](0)[0]:.2f} s (not counted)")
    results = {tool: [] for tool in tools}
    for run in range(args.runs):
        for tool in (list(tools) if run % 2 == 0 else list(tools)[::-1]):
            results[tool].append(tools[tool](run))
    print(f"\ndigits, hidden (100,), adam, batch {batch}, {args.epochs} epochs"
          f"{' of partial_fit calls' if args.partial_fit else ''}, "
          f"{args.runs} runs (random_state 0..{args.runs - 1}), "
          f"threads: {args.threads or 'library defaults'}")
    rows = min(200, len(data[0][0])) if batch == "auto" else batch
    batches = args.epochs * -(-len(data[0][0]) // rows)
    print(f"{'tool':<20} {'time median':>10} {'range':>15} {'a batch':>8} {'speed-up':>8} "
          f"{'run ratios':>12} {'test accuracy':>22}")
    reference = [seconds for seconds, _ in results["scikit-learn"]]
    for tool, rows in results.items():
        seconds = [s for s, _ in rows]
        ratios = [ref / s for ref, s in zip(reference, seconds)]
        accuracy = [100 * a for _, a in rows if a is not None]
        scores = (f"{statistics.mean(accuracy):.2f}% ({min(accuracy):.1f}-{max(accuracy):.1f})"
                  if accuracy else "")
        print(f"{tool:<20} {statistics.median(seconds):>9.3f}s "
              f"{min(seconds):>6.3f}-{max(seconds):.3f}s "
              f"{1e6 * statistics.median(seconds) / batches:>6.0f}us "
              f"{statistics.median(reference) / statistics.median(seconds):>7.1f}x "
              f"{min(ratios):>5.1f}-{max(ratios):.1f}x {scores:>22}")


if __name__ == "__main__":
    main()
