"""The benchmark harness behind ``fastmlp report`` and ``fastmlp bench``.

``workloads`` defines the cases (kernels, training steps, sweeps) and their
FLOP counts; ``timing`` times one callable; ``speed`` runs cases on every
available backend; ``convergence`` trains every optimizer on the data sets;
``tables`` and ``plots`` turn results into Markdown and PNGs; ``report``
writes ``reports/<name>/``. The regression gate (``fastmlp bench``): ``gate_run`` runs
it, ``against`` builds REF's worktree and drives the timing processes (``worker``),
``stats`` gives the ratios' intervals, ``gate`` the verdicts and baselines, ``benchjson``
pytest-benchmark's JSON.
"""
