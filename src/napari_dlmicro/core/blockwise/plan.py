"""Blocks over a big image: cores that partition it, each read with a halo around it.

Output axes are the image's axes without C in ``TZYX`` order. The model's
spatial axes (``YX``, or ``ZYX`` for a 3D model) are cut into blocks whose
cores are multiples of the output's chunks, so no two blocks ever write the
same chunk; the other axes (T, and Z for a 2D model) are looped over one index
at a time. Each block reads its core plus ``halo`` pixels on every side
(shifted inward at the image's edge, so edge blocks read as much as inner
ones), its start rounded down to a multiple of ``align``: a U-Net pools
on a grid that starts where its input starts, so a block read on the whole
image's grid gives the whole image's outputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

from napari_dlmicro.core.errors import UserError


@dataclass(frozen=True)
class Block:
    """One unit of blockwise work."""

    number: int  # position in the plan (ids and offsets follow this order)
    loop: tuple[int, ...]  # index on each loop axis
    grid: tuple[int, ...]  # position in the spatial block grid
    core: tuple[slice, ...]  # the spatial region this block owns
    read: tuple[slice, ...]  # the spatial region it reads (core + halo, clipped)

    @property
    def core_in_read(self) -> tuple[slice, ...]:
        return tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(self.core, self.read))

    @property
    def out_index(self) -> tuple[slice, ...]:
        """Where the core sits in the output (loop axes, then spatial)."""
        return tuple(slice(i, i + 1) for i in self.loop) + self.core

    @property
    def key(self) -> str:
        return "_".join(map(str, self.loop + self.grid)) or "0"

    def where(self, axes: str) -> str:
        """The block in words, in full-resolution coordinates: ``t=0, y 0:1024, x 1024:2048``."""
        n_loop = len(self.loop)
        parts = [f"{a.lower()}={i}" for a, i in zip(axes[:n_loop], self.loop)]
        parts += [f"{a.lower()} {s.start}:{s.stop}" for a, s in zip(axes[n_loop:], self.core)]
        return ", ".join(parts)


@dataclass(frozen=True)
class BlockPlan:
    """Every block of a job, with the axes they refer to."""

    out_axes: str  # e.g. "TZYX"
    out_shape: tuple[int, ...]
    n_loop: int  # leading loop axes of out_axes
    block: tuple[int, ...]  # core size per spatial axis
    halo: tuple[int, ...]
    blocks: tuple[Block, ...]
    align: tuple[int, ...] = ()  # read starts are multiples of these (per spatial axis)

    @property
    def spatial_axes(self) -> str:
        return self.out_axes[self.n_loop:]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(math.ceil(n / b) for n, b in zip(self.out_shape[self.n_loop:], self.block))

    def read_of(self, core: tuple[slice, ...], halo: tuple[int, ...] | None = None) -> tuple[slice, ...]:
        """The region read for ``core`` with ``halo`` (the plan's by default): clipped, its start aligned."""
        halo = self.halo if halo is None else halo
        return read_region(core, halo, self.out_shape[self.n_loop:], self.align or (1,) * len(core))

    def by_position(self) -> dict[tuple[tuple[int, ...], tuple[int, ...]], Block]:
        return {(b.loop, b.grid): b for b in self.blocks}

    def neighbours(self, block: Block) -> list[Block]:
        """The blocks around ``block`` (sharing a face, an edge or a corner) in the same loop position."""
        lookup = self.by_position()
        out = []
        for step in product((-1, 0, 1), repeat=len(block.grid)):
            if any(step):
                other = lookup.get((block.loop, tuple(g + s for g, s in zip(block.grid, step))))
                if other is not None:
                    out.append(other)
        return out

    def to_json(self) -> dict:
        return {"out_axes": self.out_axes, "out_shape": list(self.out_shape), "n_loop": self.n_loop,
                "block": list(self.block), "halo": list(self.halo), "align": list(self.align)}


def read_region(core: tuple[slice, ...], halo: tuple[int, ...], shape: tuple[int, ...],
                align: tuple[int, ...]) -> tuple[slice, ...]:
    """``core`` grown by ``halo`` on each side, within ``shape``, its start rounded down to ``align``.

    Where the image's edge cuts the halo on one side, the region reaches that
    much further in on the other (as far as the image goes): a block at the
    edge reads as many pixels as an inner one. The model then sees blocks of
    one shape (one engine choice, one set of buffers, the same peak memory
    for a corner block as for an inner one). Which objects a block owns is
    still decided by the seeds in its core; the extra context only brings its
    outputs nearer the whole image's.
    """
    out = []
    for c, h, n, a in zip(core, halo, shape, align):
        lo, hi = c.start - h, c.stop + h
        if lo < 0:
            lo, hi = 0, hi - lo
        if hi > n:
            lo, hi = lo - (hi - n), n
        out.append(slice(max(0, lo) // a * a, hi))
    return tuple(out)


def output_axes(axes: str, model_ndim: int) -> tuple[str, int]:
    """The output's axes (``TZYX`` order, no C) and how many of them are looped over."""
    out = "".join(a for a in "TZYX" if a in axes)
    spatial = 3 if ("Z" in out and model_ndim == 3) else 2
    return out, len(out) - spatial


def plan_blocks(out_axes: str, out_shape: tuple[int, ...], n_loop: int, block: int | tuple[int, ...],
                halo: tuple[int, ...], chunks: tuple[int, ...], align: int | tuple[int, ...] = 1) -> BlockPlan:
    """Blocks of about ``block`` pixels per spatial axis, rounded up to whole ``chunks``.

    ``align`` (per spatial axis, or one for all) is the grid read starts sit on
    (a network's ``div_by``).

    Refuses blocks smaller than the halo: objects could then reach past the
    next block, and most of each read would be context.
    """
    spatial_shape = out_shape[n_loop:]
    spatial_chunks = chunks[n_loop:]
    sizes = block if isinstance(block, tuple) else tuple(
        block if a in "YX" else min(block, n) for a, n in zip(out_axes[n_loop:], spatial_shape))
    for axis, b, h, n in zip(out_axes[n_loop:], sizes, halo, spatial_shape):
        if b < h and b < n:
            raise UserError(f"the block ({b} px along {axis}) is smaller than the model's halo ({h} px)",
                            f"use a block of {h} px or more (dock: Big images › Block; CLI: --block); "
                            "blocks must hold the context and the largest object")
    sizes = tuple(min(n, max(c, math.ceil(b / c) * c)) for b, c, n in zip(sizes, spatial_chunks, spatial_shape))
    aligns = align if isinstance(align, tuple) else (int(align),) * len(sizes)
    grids = [range(math.ceil(n / b)) for n, b in zip(spatial_shape, sizes)]
    loops = [range(n) for n in out_shape[:n_loop]]
    blocks = []
    for loop in product(*loops):
        for grid in product(*grids):
            core = tuple(slice(g * b, min(n, (g + 1) * b)) for g, b, n in zip(grid, sizes, spatial_shape))
            read = read_region(core, halo, spatial_shape, aligns)
            blocks.append(Block(len(blocks), tuple(loop), tuple(grid), core, read))
    return BlockPlan(out_axes, tuple(out_shape), n_loop, sizes, tuple(halo), tuple(blocks), aligns)
