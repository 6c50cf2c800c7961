"""Overlapping tiles over an image, shared by every predictor.

A tile is read with ``margin`` pixels of context on each side and only its
*core* is kept, so a network sees the same neighbourhood for every output
pixel whether the image is tiled or not. All tile edges sit on multiples of
``div_by`` so that each tile fits a U-Net and outputs on a coarser grid stay
aligned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One tile: where to read (``src``) and which part of it to keep (``core``)."""

    src: tuple[slice, ...]  # region of the image fed to the network
    core: tuple[slice, ...]  # region of the image this tile is responsible for

    @property
    def core_in_src(self) -> tuple[slice, ...]:
        """The core, in the tile's own coordinates."""
        return tuple(slice(c.start - s.start, c.stop - s.start) for c, s in zip(self.core, self.src))


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


def _axis_tiles(length: int, tile: int, margin: int, div: int) -> list[tuple[slice, slice]]:
    tile = max(_round_up(tile, div), div)
    margin = _round_up(margin, div)
    if length <= tile:
        return [(slice(0, length), slice(0, length))]
    core = max(tile - 2 * margin, div)
    n = math.ceil(length / core)
    bounds = [min(length, _round_up(round(i * length / n), div)) for i in range(n + 1)]
    bounds[-1] = length
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        out.append((slice(max(0, a - margin), min(length, b + margin)), slice(a, b)))
    return out


def plan_tiles(
    shape: tuple[int, ...],
    tile: int | tuple[int, ...] | None,
    margin: int | tuple[int, ...],
    div_by: tuple[int, ...],
) -> list[Tile]:
    """Tiles covering ``shape`` (spatial axes only).

    ``tile=None`` means one tile over everything. Sizes are rounded up to
    multiples of ``div_by``; the cores partition the image exactly.
    """
    ndim = len(shape)
    if tile is None:
        tile = tuple(shape)
    tiles = tile if isinstance(tile, tuple) else (tile,) * ndim
    margins = margin if isinstance(margin, tuple) else (margin,) * ndim
    per_axis = [_axis_tiles(n, t, m, d) for n, t, m, d in zip(shape, tiles, margins, div_by)]
    return [Tile(tuple(p[0] for p in combo), tuple(p[1] for p in combo)) for combo in product(*per_axis)]


def pad_to_multiple(array: np.ndarray, div_by: tuple[int, ...], mode: str = "reflect") -> np.ndarray:
    """Pad the leading spatial axes at their end up to multiples of ``div_by``.

    Trailing axes beyond ``len(div_by)`` (channels) are left alone. Axes too
    short to reflect are padded symmetrically instead.
    """
    pads = [(0, (-n) % d) for n, d in zip(array.shape, div_by)]
    pads += [(0, 0)] * (array.ndim - len(pads))
    if not any(p[1] for p in pads):
        return array
    if mode == "reflect" and any(n < 2 for n, p in zip(array.shape, pads) if p[1]):
        mode = "symmetric"
    return np.pad(array, pads, mode=mode)
