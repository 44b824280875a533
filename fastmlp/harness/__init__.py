"""The benchmark harness behind ``fastmlp report`` and ``fastmlp bench``.

``workloads`` defines the cases (kernels, training steps, sweeps) and their
FLOP counts; ``timing`` times one callable; ``speed`` runs cases on every
available backend; ``epochs`` times an epoch of ``fit`` and of the other tools
(``compare``); ``convergence`` trains every optimizer on the data sets; ``seed``
runs the seed notes' experiments; ``tables``, ``plots`` and ``seed_plots`` turn
results into Markdown and PNGs, which ``answer``, ``seed_section``, ``render`` and
``details`` arrange into pages and ``html`` into one file; ``report`` writes
``reports/<name>/``. The regression gate (``fastmlp bench``): ``gate_run`` runs it,
``against`` builds REF's worktree and drives the timing processes (``worker``),
``stats`` gives the ratios' intervals, ``gate`` the verdicts and baselines,
``benchjson`` pytest-benchmark's JSON.
"""
