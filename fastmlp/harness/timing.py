"""Timing callables: first call apart, then repeated rounds, robust statistics.

A round runs the callable ``inner`` times so that even microsecond steps are
timed over about a millisecond (``perf_counter`` resolution and loop overhead
then do not matter); the per-call time of each round is one sample. We report
the median and the interquartile range of the samples, never the mean, because
a shared machine adds one-sided noise.
"""
from __future__ import annotations

import signal
import time
from contextlib import contextmanager

import numpy as np

from fastmlp import threads

ROUND_SECONDS = 2e-3  # target length of one timed round
#: Calls that must all be slower than a round before a callable is timed one call a round,
#: and tries at sizing a round: on a busy machine one 30 us call preempted for 2 ms would
#: otherwise turn every round of it into a single call.
PROBES = 3


class TooSlow(Exception):
    """A pilot call overran its time limit."""


@contextmanager
def time_limit(seconds):
    """Interrupt pure-Python code that runs longer than ``seconds`` (main thread, Unix)."""
    if seconds is None or not hasattr(signal, "setitimer"):
        yield
        return

    def interrupt(signum, frame):
        raise TooSlow(f"one call took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Timer:
    """One callable under timing: its first call now, then rounds when asked.

    ``first_call`` is the very first call (it includes a JIT compile or a cold
    cache). A call slower than a round is timed up to ``PROBES - 1`` more times
    at once (steady state); when they are all slower than a round too, it runs
    one call per round, and if they overran ``budget`` they are the only samples.
    ``first_call_limit`` raises ``TooSlow`` when the first call overruns it.
    """

    def __init__(self, fn, budget=0.25, min_rounds=5, first_call_limit=None):
        self.fn, self.budget, self.min_rounds = fn, budget, min_rounds
        with time_limit(first_call_limit):
            self.first = _timed(fn)
        self.samples = []
        if self.first >= ROUND_SECONDS:  # slow, or a compile: steady-state calls decide
            probes = [_timed(fn)]
            while PROBES > len(probes) and probes[-1] >= ROUND_SECONDS and sum(probes) < budget:
                probes.append(_timed(fn))
            if min(probes) >= ROUND_SECONDS:
                self.samples += probes
                if min(probes) > budget:
                    self.min_rounds = 1
        self.inner = 1 if self.samples else _calls_per_round(fn)
        self.spent = sum(self.samples)

    def wants_more(self, max_rounds=200):
        n = len(self.samples)
        return n < max_rounds and (n < self.min_rounds or self.spent < self.budget)

    def round(self):
        t0 = time.perf_counter()
        for _ in range(self.inner):
            self.fn()
        elapsed = time.perf_counter() - t0
        self.samples.append(elapsed / self.inner)
        self.spent += elapsed

    def per_call(self):
        return self.samples[-1] if self.samples else self.first

    def result(self):
        return summarize(self.samples, self.first, self.inner)


#: Pause before a turn of a call this long or longer (see ``interleave``), so that the
#: pools of the turn before no longer spin. Under the runtimes' own settings OpenBLAS's
#: threads spin for over 0.1 s after their last call: numba's two-thread matmul_blocked at
#: 256x784x512 float32 right after numpy.matmul calls took 4.5 ms with no pause, 3.8 after
#: 0.1 s and 2.7-2.8 after 0.2 s to 1.0 s (Ice Lake), so SETTLE_S. Under fastmlp's
#: (``threads.pools_sleep_at_once``) they sleep within ~0.1 ms, and SHORT_SETTLE_S does:
#: no longer, because on a VM whose idle vCPU halts (AMD EPYC, Zen 5) both compiled
#: backends' matmul_blocked ran 3-5x slower for the first 10-40 calls after 50 ms or more
#: of idle, and at full speed after 2 ms (docs/performance.md, "Pauses").
SETTLE_ABOVE_S, SETTLE_S, SHORT_SETTLE_S = 5e-4, 0.25, 5e-3


def settle_seconds():
    """The pause before a threaded turn under this process's thread settings."""
    return SHORT_SETTLE_S if threads.pools_sleep_at_once() else SETTLE_S


#: Turns each timer of ``interleave`` takes by default.
TURNS = 3


def interleave(timers, max_rounds=200, turns=TURNS):
    """Turns across ``timers``, each ``1 / turns`` of its budget, until each has spent it.

    Taking turns means a slow spell of a shared machine hits every backend of a
    case alike, so their ratios stay honest. Turns are blocks of rounds, and a
    turn of calls long enough to use threads starts after a pause
    (``settle_seconds``): OpenBLAS and OpenMP pools keep their threads spinning for a
    while after their last call, and would steal a core from the next backend's threads.
    """
    settle = settle_seconds()
    while True:
        active = [t for t in timers if t.wants_more(max_rounds)]
        if not active:
            return
        for timer in active:
            if len(timers) > 1 and timer.per_call() >= SETTLE_ABOVE_S:
                time.sleep(settle)
            goal = timer.spent + timer.budget / turns
            while timer.wants_more(max_rounds):
                timer.round()
                if timer.spent >= goal:
                    break


def measure(fn, budget=0.25, min_rounds=5, max_rounds=200, first_call_limit=None):
    """Time ``fn()`` alone; a dict of seconds per call (see ``Timer``)."""
    timer = Timer(fn, budget, min_rounds, first_call_limit)
    interleave([timer], max_rounds)
    return timer.result()


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _calls_per_round(fn, tries=PROBES):
    """Calls per round so that a round lasts about ``ROUND_SECONDS``.

    Runs ``fn`` for about half a round, ``tries`` times, and keeps the fastest (a try
    preempted on a busy machine would make rounds of one call); this also warms caches.
    """
    fastest = float("inf")
    for _ in range(tries):
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < ROUND_SECONDS / 2:
            fn()
            calls += 1
        fastest = min(fastest, (time.perf_counter() - t0) / calls)
    return max(1, int(ROUND_SECONDS / fastest))


def summarize(samples, first=float("nan"), inner=1):
    q1, median, q3 = np.percentile(samples, [25, 50, 75])
    return dict(median_s=float(median), q1_s=float(q1), q3_s=float(q3), iqr_s=float(q3 - q1),
                min_s=float(np.min(samples)), rounds=len(samples), inner=inner,
                first_call_s=float(first))
