"""The benchmark harness behind ``fastmlp report`` and ``fastmlp bench``.

``workloads`` defines the cases (kernels, training steps, sweeps) and their
FLOP counts; ``timing`` times one callable; ``speed`` runs cases on every
available backend; ``convergence`` trains every optimizer on the data sets;
``tables`` and ``plots`` turn results into Markdown and PNGs; ``report``
writes ``reports/<name>/``; ``gate`` saves and compares regression baselines.
"""
