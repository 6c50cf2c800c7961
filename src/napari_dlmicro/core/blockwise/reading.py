"""Reading one block of a lazy image in the order models take: spatial axes, then channels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_dlmicro.core.data.normalize import percentile_range
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.sources import Source

NORM_SAMPLE_PIXELS = 1 << 24  # percentiles come from the finest pyramid level of at most 16 MPix a frame


@dataclass(frozen=True)
class BlockReader:
    """How to read blocks of one image: its source, stored axes, the output's loop/spatial axes and channels."""

    source: Source
    axes: str  # stored order, letters of TCZYX
    out_axes: str  # TZYX order, no C
    n_loop: int
    channels: tuple[int, ...] | None = None  # channels to keep (None: all)

    def index(self, loop: tuple[int, ...], region: tuple[slice, ...]) -> tuple:
        """The source index for a loop position and a spatial region."""
        at = dict(zip(self.out_axes[: self.n_loop], loop))
        at.update(zip(self.out_axes[self.n_loop:], region))
        out = []
        for a in self.axes:
            if a in at:
                out.append(at[a])
            elif a == "C":
                out.append(slice(None) if self.channels is None else slice(min(self.channels),
                                                                           max(self.channels) + 1))
        return tuple(out)

    def read(self, loop: tuple[int, ...], region: tuple[slice, ...]) -> np.ndarray:
        """The block as (spatial..., C) in the model's axis order."""
        data = self.source.read(self.index(loop, region))
        kept = [a for a, i in zip(self.axes, self.index(loop, region)) if isinstance(i, slice)]
        order = [kept.index(a) for a in self.out_axes[self.n_loop:]]
        if "C" in kept:
            order.append(kept.index("C"))
        data = np.transpose(data, order)
        if "C" not in kept:
            data = data[..., None]
        elif self.channels is not None:
            data = data[..., [c - min(self.channels) for c in self.channels]]
        return data


def frame_ranges(image: LazyImage, low: float, high: float, channels: tuple[int, ...] | None,
                 per: str = "T") -> dict[int, tuple[list[float], list[float]]]:
    """Percentile ranges per channel, for every index of axis ``per`` (one entry, 0, without it).

    Read from the finest pyramid level of at most :data:`NORM_SAMPLE_PIXELS`
    pixels per frame, or from level 0 with a stride, so a whole-slide image
    is normalised as a whole without being read whole; an image that small
    gets exactly the whole-image percentiles.
    """
    axes = image.axes
    level = _sample_level(image)
    data = image.levels[level]
    step = 1
    spatial = [i for i, a in enumerate(axes) if a in "ZYX"]
    pixels = int(np.prod([data.shape[i] for i in spatial]))
    while pixels // (step ** len(spatial)) > NORM_SAMPLE_PIXELS:
        step += 1
    if step > 1:
        data = data[tuple(slice(None, None, step) if a in "ZYX" else slice(None) for a in axes)]
    out: dict[int, tuple[list[float], list[float]]] = {}
    n = image.shape[axes.index(per)] if per in axes else 1
    for t in range(n):
        frame = data[tuple(t if a == per else slice(None) for a in axes)] if per in axes else data
        frame_axes = axes.replace(per, "") if per in axes else axes
        try:
            values = np.asarray(frame)
        except (ValueError, RuntimeError, OSError, TypeError) as exc:
            raise UserError(f"{image.name} cannot be read to find its intensity range: a chunk cannot be decoded "
                            f"({exc})", "the store is damaged: copy or convert it again") from None
        if "C" in frame_axes:
            values = np.moveaxis(values, frame_axes.index("C"), -1)
            if channels is not None:
                values = values[..., list(channels)]
        else:
            values = values[..., None]
        lo, hi = percentile_range(values, low, high, axis=tuple(range(values.ndim - 1)))
        out[t] = (lo.reshape(-1).tolist(), hi.reshape(-1).tolist())
    return out


def _sample_level(image: LazyImage) -> int:
    spatial = [i for i, a in enumerate(image.axes) if a in "ZYX"]
    best = len(image.levels) - 1
    for level, arr in enumerate(image.levels):
        if int(np.prod([arr.shape[i] for i in spatial])) <= NORM_SAMPLE_PIXELS:
            best = level
            break
    return best
