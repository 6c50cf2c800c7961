"""torch's CPU thread count: set deliberately, and chosen by measuring training steps as the load changes.

On a small CPU shared with other busy processes, torch's threads wait for
each other at every operation: two threads can then be three times slower
than one. Which count is faster depends on the load at the moment, so the
tuner times a few steps with each candidate, keeps the fastest for a while,
and measures again.
"""
from __future__ import annotations

import os
import statistics
import time

import torch


class ThreadTuner:
    """Call :meth:`before_step` and :meth:`after_step` around every training step."""

    def __init__(self, candidates: tuple[int, ...] | None = None, trial_steps: int = 3,
                 recheck_s: float = 20.0) -> None:
        cores = max(1, os.cpu_count() or 1)
        env = os.environ.get("DLMICRO_THREADS")
        if candidates is None:
            candidates = (int(env),) if env else tuple(dict.fromkeys((cores, max(1, cores // 2), 1)))
        self.candidates = candidates
        self.trial_steps = max(2, trial_steps)
        self.recheck_s = recheck_s
        self.best = candidates[0]
        self._times: dict[int, list[float]] = {}
        self._trial = 0  # index of the candidate under trial; len(candidates) when exploiting
        self._since = 0.0
        self._t0 = 0.0
        if len(candidates) == 1:
            self._trial = 1

    @property
    def current(self) -> int:
        """The thread count that the next step runs with."""
        return self.candidates[self._trial] if self._trial < len(self.candidates) else self.best

    def before_step(self) -> None:
        """Set the thread count for the coming step."""
        n = self.current
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        self._t0 = time.perf_counter()

    def after_step(self) -> None:
        """Record the step's duration; move on through the trials or back to them when due."""
        now = time.perf_counter()
        if self._trial < len(self.candidates):
            times = self._times.setdefault(self.current, [])
            times.append(now - self._t0)
            if len(times) >= self.trial_steps:
                self._trial += 1
                if self._trial == len(self.candidates):
                    # the first step after a switch is a warm-up: judge by the median of the rest
                    self.best = min(self._times, key=lambda n: statistics.median(self._times[n][1:]))
                    self._since = now
        elif len(self.candidates) > 1 and now - self._since > self.recheck_s:
            self._times, self._trial = {}, 0


def set_cpu_threads(n: int | None = None) -> int:
    """Give torch a deliberate thread count: all cores but none oversubscribed.

    ``DLMICRO_THREADS`` overrides; returns the count in force.
    """
    if n is None:
        env = os.environ.get("DLMICRO_THREADS")
        n = int(env) if env else max(1, os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
