"""The one checkpoint keeper: the best weights so far, in memory and on disk."""
from __future__ import annotations

import math
import time
from collections.abc import Callable


class BestKeeper:
    """The best weights so far by a score where higher is better (a tuple, compared in order).

    With a ``tolerance``, newer weights also replace the kept ones when the
    first element of their score is within ``tolerance`` of the best seen so
    far: on a small validation set, differences below one object are noise,
    and the newer weights have trained longer.

    ``save`` writes a checkpoint of the kept weights; it is throttled to at
    most one write every ``min_interval_s`` seconds unless forced.
    """

    def __init__(self, save: Callable[[], None] | None = None, min_interval_s: float = 5.0,
                 tolerance: float = 0.0) -> None:
        self.score: tuple | None = None  # the kept weights' score
        self.best_seen: tuple | None = None
        self.floor: tuple | None = None  # the starting weights' score: the tolerance never goes below it
        self.state: dict | None = None
        self.step = 0
        self.tolerance = tolerance
        self._save = save
        self._interval = min_interval_s
        self._last_save = -math.inf
        self._dirty = False
        self.saved_step: int | None = None  # the step of the checkpoint on disk, once one was written
        self._buffers: dict | None = None  # where kept weights are copied (made by reserve or the first keep)

    def offer(self, score: tuple, state: dict, step: int, start: bool = False) -> bool:
        """Keep ``state`` if ``score`` beats the best so far, or comes within the tolerance of it.

        ``start`` marks the weights a continued training began from: nothing
        scoring below them replaces them, tolerance or not.
        """
        if start:
            self.floor = score
        better = self.best_seen is None or score > self.best_seen
        near = (self.tolerance > 0 and self.best_seen is not None and score[0] >= self.best_seen[0] - self.tolerance
                and (self.floor is None or score >= self.floor))
        if better:
            self.best_seen = score
        if not (better or near):
            return False
        self.keep(state, step, score)
        return True

    def keep(self, state: dict, step: int, score: tuple | None = None) -> None:
        """Keep ``state`` whatever its score (the last weights of a run that spent its budget, say)."""
        self.score, self.step = score, step
        if self._buffers is not None and _same_layout(self._buffers, state):
            for k, v in state.items():  # into buffers made beforehand: a copy, no allocation (see reserve)
                self._buffers[k].copy_(v.detach())
            self.state = self._buffers
        else:
            self.state = {k: v.detach().clone() for k, v in state.items()}
            self._buffers = self.state
        self._dirty = True
        self.flush(force=False)

    def reserve(self, state: dict) -> None:
        """Make the buffers that kept weights like ``state`` will be copied into.

        For a big network (Cellpose-SAM: 1.2 GB), allocating a copy of the
        weights takes seconds the first time; reserved before training, every
        keep is a plain copy (a tenth of a second).
        """
        buffers = {k: v.detach().clone() for k, v in state.items()}
        if self._buffers is None:
            self._buffers = buffers

    def flush(self, force: bool = True) -> None:
        """Write the kept checkpoint if it changed (and the throttle allows)."""
        if self._save is None or not self._dirty:
            return
        now = time.perf_counter()
        if force or now - self._last_save >= self._interval:
            self._save()
            self._last_save = now
            self._dirty = False
            self.saved_step = self.step


def _same_layout(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and a[k].device == b[k].device for k in a)
