"""Applying a Noise2Void or CARE network to one sample, tile by tile, in the input's units."""
from __future__ import annotations

import numpy as np

from napari_dlmicro.core.data.tiling import pad_to_multiple, plan_tiles
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.restoration.network import RestorationModel, predict_tile
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, ProgressClock
from napari_dlmicro.core.runtime.oom import free_gpu_memory, is_out_of_memory

DEFAULT_TILE = 512
MIN_TILE = 64


def tiles_of(model: RestorationModel, spatial_shape: tuple[int, ...], tile: int | None) -> int:
    """How many tiles one sample of ``spatial_shape`` is cut into."""
    return len(plan_tiles(spatial_shape, tile, 0, model.div_by))


def predict_sample(model: RestorationModel, sample: np.ndarray, tile: int | None = DEFAULT_TILE,
                   tta: bool = False, token: CancelToken = NEVER, clock: ProgressClock | None = None,
                   done: int = 0, input_range: tuple[np.ndarray, np.ndarray] | None = None) -> Job:
    """Restore one (C, *spatial) sample in overlapping tiles; returns it in the input's units.

    Yields a :class:`Progress` per tile (on ``clock``, counting on from ``done``).
    Out of memory on a GPU, the tile size is halved and the sample retried.
    NaN pixels of the input stay NaN in the output. ``input_range`` (per
    channel ``lo, hi``) replaces the model's own: a block of a big image is
    normalised with the whole image's range.
    """
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
            out = np.empty((model.config.get("n_out", x.shape[0]),) + x.shape[1:], np.float32)
            for i, t in enumerate(tiles):
                token.check()
                src = np.moveaxis(x[(slice(None),) + t.src], 0, -1)
                padded = np.moveaxis(pad_to_multiple(src, div), -1, 0)
                y = predict_tile(model, padded, tta=tta, token=token)
                out[(slice(None),) + t.core] = y[(slice(None),) + t.core_in_src]
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
    if bad.any() and out.shape == sample.shape:
        out[bad] = np.nan
    return out
