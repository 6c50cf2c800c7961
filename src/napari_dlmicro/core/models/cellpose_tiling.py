"""Cellpose-SAM's settings, and how it tiles an image: what a run will cost.

Cellpose-SAM tiles by itself (256 px tiles, 10 % overlap, fixed by the
network); these functions repeat its arithmetic so the dock can count tiles
for progress and warn about CPU time before a run starts.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from .base import Setting

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

SETTINGS = (
    Setting(
        "diameter", "Object diameter (px)", 0.0, 0.0, 1000.0, 1.0,
        "Typical object diameter in pixels; 0 leaves the image as it is. Cellpose-SAM "
        "is trained on objects about 30 px across: a diameter D rescales the image by "
        "30/D before the network (D below 30 enlarges it, so it runs slower).",
    ),
    Setting(
        "flow_threshold", "Flow threshold", 0.4, 0.0, 3.0, 0.05,
        "Largest flow error a mask may have: raise it to keep more (and less regular) "
        "masks, lower it to drop ill-shaped ones. Not used for true 3D.",
    ),
    Setting(
        "cellprob_threshold", "Cell probability threshold", 0.0, -6.0, 6.0, 0.1,
        "Pixels whose cell probability (a logit) is above this go into masks: lower it "
        "to find more and larger masks, raise it for fewer and tighter ones.",
    ),
    Setting(
        "min_size", "Minimum size (px)", 15.0, 0.0, 100000.0, 1.0,
        "Masks with fewer pixels (voxels in 3D) than this are dropped.",
    ),
    Setting(
        "niter", "Flow iterations", 0.0, 0.0, 5000.0, 10.0,
        "Steps of the flow dynamics that gather pixels into masks; 0 picks it "
        "automatically (200, scaled with the diameter). Raise it for long, thin objects.",
    ),
    Setting(
        "stitch_threshold", "3D stitch threshold", 0.0, 0.0, 1.0, 0.05,
        "Volumes only. 0: true 3D, the network runs over YX, ZY and ZX planes (best "
        "masks, at least 3x the 2D time). Above 0: each plane is segmented in 2D and "
        "masks in neighbouring planes that overlap by more than this IoU are joined "
        "(much faster on a CPU).",
    ),
    Setting(
        "anisotropy", "Z anisotropy", 1.0, 0.1, 50.0, 0.1,
        "True 3D only: Z step divided by the XY pixel size (2 when planes are twice as "
        "far apart as pixels); the volume is stretched along Z to match.",
    ),
)

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
