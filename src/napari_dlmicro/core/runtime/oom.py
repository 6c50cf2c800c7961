"""Out of GPU memory: recognising it, freeing what torch caches, and retrying a forward pass smaller or on the CPU."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from napari_dlmicro.core.runtime.events import Job, Level, Notice


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU out-of-memory error from any backend."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_gpu_memory(device: torch.device) -> None:
    """Return cached blocks after an out-of-memory error."""
    if device.type == "cuda":
        torch.cuda.empty_cache()



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
        yield Notice(f"GPU memory ran out: retrying with smaller tiles ({smaller} pixels)", Level.WARNING)
        return (yield from in_tiles(smaller))
    yield Notice("GPU memory ran out even with small tiles: continuing on the CPU (slower)", Level.WARNING)
    to_cpu()
    return forward()
