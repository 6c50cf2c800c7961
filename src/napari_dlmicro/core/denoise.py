"""Apply a Noise2Void or CARE model to any image: tiles, time points, channels.

``denoise_job`` is a job generator (a ``Preview(kind="image")`` per finished
plane or volume, ``Progress`` per tile) that returns a float32 array of the
input's shape, in the input's units; ``denoise`` is the same, headless.
NaN pixels of the input stay NaN in the output.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cancel import NEVER, CancelToken
from .devices import free_gpu_memory, is_out_of_memory, resolve_device, set_cpu_threads
from .errors import UserError
from .events import Job, Preview, ProgressClock, run_to_end
from .models.restoration import RestorationModel, load_restoration, predict_tile
from .restoration_data import Layout, from_samples, to_samples
from .tiling import pad_to_multiple, plan_tiles

DEFAULT_TILE = 512


def check_compatible(model: RestorationModel, samples: Sequence[np.ndarray], layout: Layout) -> None:
    """A clear error when the image does not suit the model (dimensions, channels)."""
    ndim = len(layout.spatial)
    if ndim != model.ndim:
        what = {2: "2D (YX)", 3: "3D (ZYX)"}
        remedy = ("to denoise a stack plane by plane, call its Z axis T (axes TYX)" if model.ndim == 2
                  else "train a 2D model for 2D images")
        raise UserError(f"the model is {what[model.ndim]} but the image is {what.get(ndim, ndim)} "
                        f"(axes {layout.axes})", remedy)
    if samples and samples[0].shape[0] != model.n_channels:
        raise UserError(f"the model expects {model.n_channels} channel(s) per sample but gets "
                        f"{samples[0].shape[0]} (channels {layout.channels})",
                        "choose the channel mode the model was trained with, or a matching model")


def predict_sample(model: RestorationModel, sample: np.ndarray, tile: int | None = DEFAULT_TILE,
                   tta: bool = False, token: CancelToken = NEVER) -> Job:
    """Denoise one (C, *spatial) sample in overlapping tiles; a job generator.

    Out of memory on a GPU, the tile size is halved and the sample retried.
    """
    lo, hi = model.input_range(sample)
    out_lo, out_hi = model.output_range(lo, hi)
    shape = (-1,) + (1,) * (sample.ndim - 1)
    bad = ~np.isfinite(sample)
    x = sample if not bad.any() else np.where(bad, np.nanmedian(sample), sample)
    x = ((x - lo.reshape(shape)) / (hi - lo + 1e-20).reshape(shape)).astype(np.float32)
    div = model.div_by
    margin = tuple(min(32, max(d, 16)) for d in div)
    while True:
        try:
            tiles = plan_tiles(x.shape[1:], tile, margin, div)
            out = np.empty((model.config.get("n_out", x.shape[0]),) + x.shape[1:], np.float32)
            for t in tiles:
                token.check()
                src = np.moveaxis(x[(slice(None),) + t.src], 0, -1)
                padded = np.moveaxis(pad_to_multiple(src, div), -1, 0)
                y = predict_tile(model, padded, tta=tta)
                core = t.core_in_src
                out[(slice(None),) + t.core] = y[(slice(None),) + core]
                yield None
            break
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            free_gpu_memory(model.device)
            current = tile or max(x.shape[1:])
            if current <= 64:
                raise UserError(f"ran out of memory on {model.device} even with {current}-pixel tiles",
                                "use the CPU (device cpu), or close other programs using the GPU") from None
            tile = current // 2
    out = out * (out_hi - out_lo).reshape(shape) + out_lo.reshape(shape)
    if bad.any() and out.shape == sample.shape:
        out[bad] = np.nan
    return out


def denoise_job(model: RestorationModel, image: np.ndarray, axes: str | None = None,
                channels: str | None = None, tile: int | None = DEFAULT_TILE, tta: bool = False,
                token: CancelToken = NEVER) -> Job:
    """Denoise every time point (and channel) of ``image``; returns float32 in the input's axes."""
    channels = channels or model.config.get("channels", "independent")
    samples, layout = to_samples(image, axes, channels)
    check_compatible(model, samples, layout)
    n_tiles = len(plan_tiles(samples[0].shape[1:], tile, 0, model.div_by))
    clock = ProgressClock(len(samples) * n_tiles, "denoising")
    outputs, done = [], 0
    yield clock.tick(0)
    for i, sample in enumerate(samples):
        gen = predict_sample(model, sample, tile, tta, token)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                outputs.append(stop.value)
                break
            done += 1
            yield clock.tick(min(done, clock.total), f"sample {i + 1}/{len(samples)}")
        yield Preview(outputs[-1], (i,), kind="image")
    return from_samples(outputs, layout)


def contrast_limits(image: np.ndarray) -> tuple[float, float]:
    """Display limits for a denoised image: its 0.5 and 99.8 percentiles of finite pixels."""
    finite = image[np.isfinite(image)]
    if finite.size > 1_000_000:  # a strided subsample is plenty for two percentiles
        finite = finite[:: finite.size // 1_000_000]
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.8])) if finite.size else (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


@dataclass
class Applied:
    """A denoised image, its display limits and, given a ground truth, PSNR/SSIM of input and output."""

    image: np.ndarray
    limits: tuple[float, float]
    scores: dict[str, Any] = field(default_factory=dict)
    score_error: str = ""


def apply_job(model: RestorationModel, image: np.ndarray, axes: str | None = None, truth: np.ndarray | None = None,
              tta: bool = False, token: CancelToken = NEVER) -> Job:
    """:func:`denoise_job`, then display limits and (given ``truth``) the quality scores; returns :class:`Applied`.

    The scores run through ``offload.call``, out of a GUI's way.
    """
    from . import offload
    from .quality import compare

    out = yield from denoise_job(model, image, axes, tile=DEFAULT_TILE, tta=tta, token=token)
    result = Applied(out, contrast_limits(out))
    if truth is not None:
        try:
            result.scores = offload.call(compare, truth, image, out)
        except UserError as exc:
            result.score_error = str(exc)
    return result


def denoise(image: np.ndarray, model: RestorationModel | str | Path, axes: str | None = None,
            channels: str | None = None, tile: int | None = DEFAULT_TILE, tta: bool = False,
            device: str = "auto") -> np.ndarray:
    """Denoise ``image`` with a model (object, folder or stored name); float32, input's shape."""
    if not isinstance(model, RestorationModel):
        dev = resolve_device(device)
        model = load_restoration(model, dev)
    if model.device.type == "cpu":
        set_cpu_threads()
    with torch.inference_mode():
        return run_to_end(denoise_job(model, image, axes, channels, tile, tta))


def train_and_denoise(images: Sequence[np.ndarray], settings=None, save_to: str | Path | None = None,
                      tta: bool = True) -> tuple[list[np.ndarray], RestorationModel]:
    """Train Noise2Void on ``images`` themselves, then denoise them (headless)."""
    from .restoration_train import TrainSettings, train_restoration

    settings = settings or TrainSettings()
    result = run_to_end(train_restoration(list(images), None, settings, save_to=save_to))
    return [denoise(im, result.model, settings.axes, settings.channels, tta=tta) for im in images], result.model
