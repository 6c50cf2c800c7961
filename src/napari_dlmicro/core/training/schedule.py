"""The learning-rate schedule every trainer follows: a short warm-up, then a cosine decay over the budget."""
from __future__ import annotations

import math


def warmup_cosine(fraction: float, base: float, warmup: float = 0.03, floor: float = 0.05) -> float:
    """The rate at ``fraction`` (0..1) of the budget: linear warm-up over ``warmup``, cosine to ``floor * base``.

    Decaying over the *budget* (minutes or epochs) means a short run ends on a
    low rate instead of swinging between checkpoints.
    """
    f = min(max(fraction, 0.0), 1.0)
    if f < warmup:
        return base * max(f / warmup, 0.05)
    g = (f - warmup) / (1 - warmup)
    return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * g)))
