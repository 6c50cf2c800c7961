"""Cellpose-SAM's settings, and how it tiles an image: what a run will cost.

Cellpose-SAM tiles by itself (256 px tiles, 10 % overlap, fixed by the
network); these functions repeat its arithmetic so the dock can count tiles
for progress and warn about CPU time before a run starts.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from napari_dlmicro.core.models.cellpose.settings import SETTINGS

TILE = 256  # Cellpose-SAM's network tile; cellpose refuses any other size
TILE_OVERLAP = 0.1  # cellpose's default overlap between tiles
PAD = 16  # cellpose pads each side to a multiple of 16, plus 16
TRAINED_DIAMETER = 30.0  # object size (px) Cellpose-SAM was trained on
CPU_BATCH = 1  # one tile per forward: a cancel answers within one tile
GPU_BATCH = 8  # cellpose's default
MAX_CHANNELS = 3

# Calibration, fp32 on 2 CPU threads: one 512x512 image (9 tiles) takes ~80 s,
# ~8 s a tile in the network and the rest in the flow dynamics.
_CALIBRATION_THREADS = 2
_NETWORK_S_PER_TILE = 8.0
_DYNAMICS_S_PER_PIXEL = (80.0 - 9 * _NETWORK_S_PER_TILE) / (512 * 512)

# --------------------------------------------------------------------------- tiling and cost


def _padded(n: int) -> int:
    """The length cellpose pads one image side to before tiling it."""
    if n < TILE:
        return max(n + PAD, TILE)
    return PAD * math.ceil(n / PAD) + PAD


def _tiles_along(n: int) -> int:
    padded = _padded(n)
    return 1 if padded <= TILE else math.ceil((1 + 2 * TILE_OVERLAP) * padded / TILE)


def _plane_batches(planes: int, ly: int, lx: int, batch_size: int) -> tuple[int, int]:
    """(network batches, tiles) for ``planes`` planes of ``ly`` x ``lx``, as cellpose groups them."""
    tiles = _tiles_along(ly) * _tiles_along(lx)
    per_chunk = max(1, batch_size // tiles)  # planes batched together
    full, rest = divmod(planes, per_chunk)
    batches = full * math.ceil(per_chunk * tiles / batch_size)
    batches += math.ceil(rest * tiles / batch_size)
    return batches, planes * tiles


def network_work(
    shape: tuple[int, ...], settings: Mapping[str, float] | None = None, batch_size: int = CPU_BATCH
) -> tuple[int, int]:
    """(network batches, tiles) cellpose will run for a YX or ZYX image of ``shape``."""
    s = {**{x.name: x.default for x in SETTINGS}, **(settings or {})}
    rescale = TRAINED_DIAMETER / s["diameter"] if s["diameter"] > 0 else 1.0
    if len(shape) == 2 or (len(shape) == 3 and s["stitch_threshold"] > 0):
        planes = 1 if len(shape) == 2 else shape[0]
        ly, lx = shape[-2:]
        if rescale != 1.0:
            ly, lx = int(ly * rescale), int(lx * rescale)
        return _plane_batches(planes, ly, lx, batch_size)
    lz, ly, lx = shape
    if rescale != 1.0 or s["anisotropy"] != 1.0:
        lz, ly, lx = int(lz * s["anisotropy"] * rescale), int(ly * rescale), int(lx * rescale)
    views = [_plane_batches(lz, ly, lx, batch_size), _plane_batches(ly, lz, lx, batch_size),
             _plane_batches(lx, lz, ly, batch_size)]
    return sum(v[0] for v in views), sum(v[1] for v in views)


def cpu_cost_estimate(
    shape: tuple[int, ...], settings: Mapping[str, float] | None = None, threads: int | None = None
) -> float:
    """Rough seconds Cellpose-SAM needs on this CPU for a YX or ZYX image of ``shape``.

    Scaled from ~80 s for one 512x512 image in fp32 on 2 threads: the network
    part by the number of 256 px tiles cellpose will run, the flow dynamics by
    pixel count, both by torch's thread count (``threads``, default: torch's).
    """
    threads = threads or torch.get_num_threads()
    _, tiles = network_work(tuple(shape), settings)
    seconds = tiles * _NETWORK_S_PER_TILE + math.prod(shape) * _DYNAMICS_S_PER_PIXEL
    return seconds * _CALIBRATION_THREADS / max(1, threads)


# --------------------------------------------------------------------------- running
