"""Running a network forward pass that may not fit on the GPU: smaller tiles first, then the CPU."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .devices import free_gpu_memory, is_out_of_memory
from .events import Job, Notice


def forward_or_shrink(forward: Callable[[], Any], in_tiles: Callable[[int], Job], to_cpu: Callable[[], None],
                      device: torch.device, tile: int, min_tile: int) -> Job:
    """``forward()``; if the GPU runs out of memory, ``in_tiles(tile // 2)`` (a job over smaller
    tiles, which may shrink again), and below ``min_tile`` ``to_cpu()`` and ``forward()`` there."""
    try:
        return forward()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
    free_gpu_memory(device)
    smaller = max(tile // 2, min_tile)
    if smaller < tile:
        yield Notice(f"GPU memory ran out: retrying with smaller tiles ({smaller} pixels)", "warning")
        return (yield from in_tiles(smaller))
    yield Notice("GPU memory ran out even with small tiles: continuing on the CPU (slower)", "warning")
    to_cpu()
    return forward()
