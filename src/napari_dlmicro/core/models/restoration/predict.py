"""Applying a Noise2Void or CARE network to one sample, tile by tile, in the target's units.

Tiles overlap by a margin that is cut off again, so every kept pixel saw the
same context as it would in one piece. An upsampling model's tiles are planned
on the input, the tile size divided by the factor (the network runs on the
interpolated tile); each one's output, and the part of it that is kept, is
the factor larger.
"""
from __future__ import annotations

import numpy as np

from napari_dlmicro.core.data.tiling import pad_to_multiple, plan_tiles
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.restoration import upsample
from napari_dlmicro.core.models.restoration.network import RestorationModel, predict_tile
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, ProgressClock
from napari_dlmicro.core.runtime.oom import free_gpu_memory, is_out_of_memory

DEFAULT_TILE = 512
MIN_TILE = 64


def input_tile(model: RestorationModel, tile: int | None) -> int | None:
    """The tile size on the input: ``tile`` divided by an upsampling model's factor, whose network runs on the
    interpolated tile (so the work per tile stays what ``tile`` asks)."""
    grow = max(model.factors)
    return max(MIN_TILE // grow, tile // grow) if tile and grow > 1 else tile


def tiles_of(model: RestorationModel, spatial_shape: tuple[int, ...], tile: int | None) -> int:
    """How many tiles one sample of ``spatial_shape`` is cut into."""
    return len(plan_tiles(spatial_shape, input_tile(model, tile), 0, model.div_by))


def output_shape(model: RestorationModel, spatial_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The spatial shape of the model's output for an input of ``spatial_shape``."""
    return tuple(int(n) * f for n, f in zip(spatial_shape, model.factors))


def check_sample(model: RestorationModel, spatial_shape: tuple[int, ...]) -> None:
    """Refuse a sample the model cannot restore: a stack too thin for a model that upsamples along Z."""
    if model.config.get("upsample", {}).get("axes") == "Z":
        upsample.check_planes(int(spatial_shape[0]))


def _scaled(region: tuple[slice, ...], factors: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(r.start * f, r.stop * f) for r, f in zip(region, factors))


def predict_sample(model: RestorationModel, sample: np.ndarray, tile: int | None = DEFAULT_TILE,
                   tta: bool = False, token: CancelToken = NEVER, clock: ProgressClock | None = None,
                   done: int = 0, input_range: tuple[np.ndarray, np.ndarray] | None = None) -> Job:
    """Restore one (C, *spatial) sample in overlapping tiles; returns it in the target's units.

    Yields a :class:`Progress` per tile (on ``clock``, counting on from ``done``).
    Out of memory on a GPU, the tile size is halved and the sample retried.
    NaN pixels of the input stay NaN in the output (every pixel they cover, for
    an upsampling model, whose output is the factor larger). ``input_range``
    (per channel ``lo, hi``) replaces the model's own: a block of a big image
    is normalised with the whole image's range.
    """
    check_sample(model, sample.shape[1:])
    factors = model.factors
    tile = input_tile(model, tile)
    lo, hi = model.input_range(sample) if input_range is None else (
        np.asarray(input_range[0], np.float32).reshape(-1), np.asarray(input_range[1], np.float32).reshape(-1))
    out_lo, out_hi = model.output_range(lo, hi)
    shape = (-1,) + (1,) * (sample.ndim - 1)
    bad = ~np.isfinite(sample)
    x = sample if not bad.any() else np.where(bad, np.nanmedian(sample), sample)
    x = ((x - lo.reshape(shape)) / (hi - lo + 1e-20).reshape(shape)).astype(np.float32)
    div = model.div_by
    margin = tuple(min(32, max(d, 16)) for d in div)
    clock = clock or ProgressClock(tiles_of(model, x.shape[1:], tile), "restoring")
    while True:
        try:
            tiles = plan_tiles(x.shape[1:], tile, margin, div)
            out = np.empty((model.config.get("n_out", x.shape[0]),) + output_shape(model, x.shape[1:]), np.float32)
            for i, t in enumerate(tiles):
                token.check()
                src = np.moveaxis(x[(slice(None),) + t.src], 0, -1)
                padded = np.moveaxis(pad_to_multiple(src, div), -1, 0)
                y = predict_tile(model, padded, tta=tta, token=token)
                out[(slice(None),) + _scaled(t.core, factors)] = y[(slice(None),) + _scaled(t.core_in_src, factors)]
                yield clock.tick(min(done + i + 1, clock.total), f"tile {i + 1}/{len(tiles)}")
            break
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            free_gpu_memory(model.device)
            current = tile or max(x.shape[1:])
            if current <= MIN_TILE:
                raise UserError(f"ran out of memory on {model.device} even with {current}-pixel tiles",
                                "use the CPU (device cpu), or close other programs using the GPU") from None
            tile = current // 2
    out = out * (out_hi - out_lo).reshape(shape) + out_lo.reshape(shape)
    if bad.any() and out.shape[0] == sample.shape[0]:
        for axis, f in enumerate(factors):
            bad = np.repeat(bad, f, axis=axis + 1) if f > 1 else bad
        out[bad] = np.nan
    return out
