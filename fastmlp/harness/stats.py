"""Ratios of timings with distribution-free confidence intervals, and the gate's verdicts.

A sample is one process's figure for a case, its fastest or its median round
(rounds within a process are not independent: they share its memory layout,
caches and the load of the moment, so the process is the unit). Timings are
compared on the log scale, where a slowdown by a factor is a shift.

- Paired processes (``--against``, ``--aa``: A B A B ..., pair i is the i-th A
  and the i-th B, run back to back): the Hodges-Lehmann estimate of the log
  ratios and the exact interval of the Wilcoxon signed-rank test.
- Unpaired processes (``--compare``: a baseline saved earlier): the
  Hodges-Lehmann shift and the exact interval of the Mann-Whitney U test.

Why rank intervals rather than a bootstrap: with 6-12 processes a side, the
bootstrap's percentile intervals cover less than their nominal level, while
these are exact at any size (given the order statistics; symmetric
differences for the signed-rank one), and a process hit by a slow spell
moves one rank, not the estimate. asv decides with the Mann-Whitney test too.

A case is *slower* when the ratio is significantly above 1 (its whole interval)
and its estimate is beyond the threshold, as asv's ``continuous`` decides; the
gate fails only on a slower case whose whole interval is above the threshold
(``beyond``). Requiring the whole interval above the threshold for the verdict
itself would miss a 25% slowdown under a 15% threshold whenever the interval is
wider than about 16%, which it is on a busy 2-core machine.
"""
from __future__ import annotations

import numpy as np

CONFIDENCE = 0.95
VERDICTS = ("slower", "faster", "same", "inconclusive")


def _signed_rank_counts(n):
    """``counts[t]``: how many of the ``2**n`` sign patterns give the statistic ``T+ = t``."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank]
    return counts


def _rank_sum_counts(n, m):
    """``counts[u]``: how many of the ``C(n+m, n)`` orderings give Mann-Whitney ``U = u``."""
    # ways[i][j]: counts for i values of one sample and j of the other (recurrence on the
    # largest value, which belongs to one sample or the other)
    ways = [[np.ones(1) for _ in range(m + 1)] for _ in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            top = np.zeros(i * j + 1)
            top[j:j + len(ways[i - 1][j])] += ways[i - 1][j]  # largest in the first: j wins
            top[:len(ways[i][j - 1])] += ways[i][j - 1]
            ways[i][j] = top
    return ways[n][m]


def _interval(estimates, counts, confidence):
    """Order statistics ``(k, M+1-k)`` of ``estimates`` covering with ``confidence``.

    ``k`` is the largest with ``2 P(stat <= k - 1) <= 1 - confidence``; ``None``
    when even the extremes do not reach it (too few samples).
    """
    cdf = np.cumsum(counts) / counts.sum()
    k = int(np.sum(2 * cdf <= 1 - confidence + 1e-12))
    if k == 0:
        return None
    ordered = np.sort(estimates)
    return float(ordered[k - 1]), float(ordered[len(ordered) - k])


def paired_log_ratio(a, b, confidence=CONFIDENCE):
    """``(estimate, (low, high) or None)`` of ``log(b / a)`` over pairs ``(a[i], b[i])``.

    Hodges-Lehmann: the median of the Walsh averages of the differences; the
    interval inverts the exact signed-rank test.
    """
    d = np.log(np.asarray(b, float)) - np.log(np.asarray(a, float))
    i, j = np.triu_indices(len(d))
    walsh = (d[i] + d[j]) / 2
    return float(np.median(walsh)), _interval(walsh, _signed_rank_counts(len(d)), confidence)


def unpaired_log_ratio(a, b, confidence=CONFIDENCE):
    """``(estimate, (low, high) or None)`` of the shift of ``log b`` over ``log a``.

    Hodges-Lehmann: the median of all differences ``log b[j] - log a[i]``; the
    interval inverts the exact Mann-Whitney test.
    """
    diffs = np.subtract.outer(np.log(np.asarray(b, float)), np.log(np.asarray(a, float)))
    counts = _rank_sum_counts(len(a), len(b))
    return float(np.median(diffs)), _interval(diffs.ravel(), counts, confidence)


def verdict(estimate, interval, threshold):
    """The verdict on a ratio ``estimate`` with its ``interval`` (``None``: too few samples).

    ``slower``: significantly above 1 (the whole interval) and by more than the
    threshold (the estimate); ``faster`` the same below 1 and ``1 / (1 + threshold)``;
    ``same``: the whole interval within both thresholds; ``inconclusive`` otherwise.
    asv's ``continuous`` decides the same way (a significant test and a ratio beyond
    its factor).
    """
    if interval is None:
        return "inconclusive"
    low, high = interval
    if low > 1 and estimate > 1 + threshold:
        return "slower"
    if high < 1 and estimate < 1 / (1 + threshold):
        return "faster"
    if low >= 1 / (1 + threshold) and high <= 1 + threshold:
        return "same"
    return "inconclusive"


def beyond(row, threshold):
    """A ``slower`` row whose whole interval is above ``1 + threshold``: the gate fails."""
    return row["verdict"] == "slower" and row["low"] > 1 + threshold


def ratio(a, b, paired=True, threshold=0.15, confidence=CONFIDENCE):
    """The comparison of one case: ``dict(ratio, low, high, verdict, n)`` (``b / a``)."""
    estimate, interval = (paired_log_ratio if paired else unpaired_log_ratio)(a, b, confidence)
    bounds = None if interval is None else (float(np.exp(interval[0])), float(np.exp(interval[1])))
    row = dict(ratio=float(np.exp(estimate)), low=bounds and bounds[0], high=bounds and bounds[1],
               verdict=verdict(float(np.exp(estimate)), bounds, threshold), n=min(len(a), len(b)))
    return dict(row, fails=beyond(row, threshold))
