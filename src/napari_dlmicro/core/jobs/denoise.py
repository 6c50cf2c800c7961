"""Apply a Noise2Void or CARE model to an image, a layer or a folder: tiles, time points, channels.

``denoise_job`` yields an image :class:`Preview` per finished sample (placed
where it belongs in the output) and a :class:`Progress` per tile, and returns a
float32 array of the input's shape (an upsampling CARE model's: the factor
larger along the axes it grows), in the target's units; :func:`apply_job`
adds display limits and quality scores for a dock; :func:`denoise_files_job`
denoises a list of files into a folder, one finished file at a time, with
the pixel size divided by an upsampling model's factor.
NaN pixels of the input stay NaN in the output.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_dlmicro.core.data.samples import Layout, from_samples, sample_region, to_samples
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.restoration import compare
from napari_dlmicro.core.io.axes import default_axes, normalize_axes
from napari_dlmicro.core.io.files import image_name
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.io.tiff_write import write_image
from napari_dlmicro.core.jobs.train import train_job
from napari_dlmicro.core.models.bioimageio.restorer import PackageRestorer
from napari_dlmicro.core.models.bioimageio.sources import is_package
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, check_engine
from napari_dlmicro.core.models.loader import load_model, resolve
from napari_dlmicro.core.models.restoration.network import RestorationModel, load_restoration
from napari_dlmicro.core.models.restoration.predict import DEFAULT_TILE, check_sample, predict_sample, tiles_of
from napari_dlmicro.core.models.restoration.train import RestorationData
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, Preview, PreviewKind, Progress, ProgressClock, relay, run_to_end
from napari_dlmicro.core.runtime.threads import set_cpu_threads
from napari_dlmicro.core.settings import Setting
from napari_dlmicro.core.training.result import StopReason

VIEWS_SETTING = Setting(
    "views", "Views", 8, int, choices=("1", "8"),
    help="Test-time views: 8 averages the network's output over the image's quarter turns and their mirror images "
         "(for CARE +0.05 to +0.08 dB on the noisy nuclei sample, for eight times the time); 1 runs it once, "
         "for speed on very large images")
DENOISE_SETTINGS = (
    Setting("tile", "Tile", DEFAULT_TILE, int, 0, 16384, 128, "Tile size in pixels (0: whole samples at once); "
            "lower it if memory runs out"),
    ENGINE_SETTING,
    VIEWS_SETTING,
)


def views_to_tta(views: int | str | None) -> bool:
    """Whether ``views`` (1 or 8; None: the default, 8) asks for the eight test-time views."""
    return int(VIEWS_SETTING.default if views is None else views) > 1


# What the denoising job runs: our Noise2Void/CARE models, or an image-to-image bioimage.io package
Restorer = RestorationModel | PackageRestorer


def _tiles_of(model: Restorer, shape: tuple[int, ...], tile: int | None) -> int:
    return model.tiles_of(shape, tile) if isinstance(model, PackageRestorer) else tiles_of(model, shape, tile)


def _predict(model: Restorer, sample: np.ndarray, tile: int | None, tta: bool, token: CancelToken,
             clock: ProgressClock, done: int) -> Job:
    if isinstance(model, PackageRestorer):
        return model.predict_sample(sample, tile, tta, token, clock, done)
    return predict_sample(model, sample, tile, tta, token, clock, done)


def check_compatible(model: Restorer, samples: Sequence[np.ndarray], layout: Layout) -> None:
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
    if samples:
        check_sample(model, samples[0].shape[1:])


def growth(model: Restorer, axes: str) -> dict[str, int]:
    """How many times larger ``model``'s output is along each spatial axis of ``axes`` (1 where it is not)."""
    factors = getattr(model, "factors", None) or ()  # a bioimage.io package restores at its input's size
    by_axis = dict(zip("ZYX"[3 - len(factors):], factors)) if factors else {}
    return {a: int(by_axis.get(a, 1)) for a in axes if a in "ZYX"}


def output_scale(model: RestorationModel, scale: Sequence[float], axes: str) -> tuple[float, ...]:
    """A layer's ``scale`` (one value per axis of ``axes``) for the model's output: divided where it grows."""
    grow = growth(model, axes)
    return tuple(float(v) / grow.get(a, 1) for v, a in zip(scale, axes))


def output_translate(model: RestorationModel, scale: Sequence[float], translate: Sequence[float],
                     axes: str) -> tuple[float, ...]:
    """A layer's ``translate`` for the model's output, so its pixels sit where the input's pixel covered them.

    An input pixel is the average of an ``f``-pixel block of the output; the
    centre of that block's first pixel is ``(f - 1) / (2 f)`` input pixels
    before the input pixel's centre.
    """
    grow = growth(model, axes)
    return tuple(float(t) - (grow.get(a, 1) - 1) / (2 * grow.get(a, 1)) * float(v)
                 for t, v, a in zip(translate, scale, axes))


def denoise_job(model: Restorer, image: np.ndarray, axes: str | None = None,
                channels: str | None = None, tile: int | None = DEFAULT_TILE, tta: bool = False,
                token: CancelToken = NEVER, clock: ProgressClock | None = None, engine: str | None = None) -> Job:
    """Denoise every time point (and channel) of ``image``; returns float32 in the input's axes.

    ``engine`` (auto, torch, onnxruntime, openvino; None keeps the model's) is where the network runs on the CPU.
    An upsampling model's output is the factor larger along the axes it grows (see :func:`growth`).
    """
    if engine is not None:
        model.use_engine(check_engine(engine))
    channels = channels or model.config.get("channels", "independent")
    samples, layout = to_samples(image, axes, channels)
    check_compatible(model, samples, layout)
    out_layout = layout.grown(growth(model, layout.axes))
    per_sample = _tiles_of(model, samples[0].shape[1:], tile)
    clock = clock or ProgressClock(len(samples) * per_sample, "denoising")
    start = clock.total - len(samples) * per_sample
    outputs = []
    for i, sample in enumerate(samples):
        out = yield from relay(_predict(model, sample, tile, tta, token, clock, start + i * per_sample),
                               lambda ev, i=i: _sample_progress(ev, i, len(samples)))
        outputs.append(out)
        region, data = sample_region(out_layout, i, out)
        yield Preview(data, region, PreviewKind.IMAGE)
    return from_samples(outputs, out_layout)


def _sample_progress(ev: Progress, i: int, n: int) -> Progress:
    if n == 1:
        return ev
    return Progress(ev.done, ev.total, f"sample {i + 1}/{n}, {ev.message}", ev.eta_s, ev.elapsed_s)


def contrast_limits(image: np.ndarray) -> tuple[float, float]:
    """Display limits for a denoised image: its 0.5 and 99.8 percentiles of finite pixels."""
    finite = image[np.isfinite(image)]
    if finite.size > 1_000_000:  # a strided subsample is plenty for two percentiles
        finite = finite[:: finite.size // 1_000_000]
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.8])) if finite.size else (0.0, 1.0)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


@dataclass
class Applied:
    """A denoised image, its display limits and, given a ground truth, the scores of input and output.

    ``scores`` is :func:`...evaluation.restoration.compare`'s: PSNR as is
    (``psnr``) and scale-invariant (``psnr_si``), and SSIM, of the input and
    of the output; :func:`...evaluation.restoration.quality_text` words them.
    ``growth`` is how many times larger the output is along each spatial axis.
    """

    image: np.ndarray
    limits: tuple[float, float]
    scores: dict[str, Any] = field(default_factory=dict)
    score_error: str = ""
    growth: dict[str, int] = field(default_factory=dict)


def apply_job(model: Restorer, image: np.ndarray, axes: str | None = None, truth: np.ndarray | None = None,
              tta: bool = True, token: CancelToken = NEVER, engine: str | None = None) -> Job:
    """:func:`denoise_job`, then display limits and (given ``truth``) the quality scores; returns :class:`Applied`.

    The scores run through ``offload.call``, out of a GUI's way.
    """
    out = yield from denoise_job(model, image, axes, tile=DEFAULT_TILE, tta=tta, token=token, engine=engine)
    image_axes = normalize_axes(axes or default_axes(np.ndim(image), np.shape(image)), np.ndim(image))
    result = Applied(out, contrast_limits(out), growth=growth(model, image_axes))
    if truth is not None:
        try:
            result.scores = offload.call(compare, truth, image, out, token=token)
        except UserError as exc:
            result.score_error = str(exc)
    return result


def denoise_files_job(files: Sequence[str | Path], out_dir: str | Path, model: Restorer,
                      axes: str | None = None, tile: int | None = DEFAULT_TILE, tta: bool = True,
                      token: CancelToken = NEVER, engine: str | None = None) -> Job:
    """Denoise TIFF files into ``out_dir/<stem>_denoised.tif`` (float32); returns the files written.

    Each file is written whole (atomically) as soon as it is done: a cancel
    keeps the finished files and leaves no partial one. ``tta`` averages
    eight flipped and turned views (:data:`VIEWS_SETTING`). An upsampling model's
    outputs are larger, with the pixel size divided by its factor where the
    file gives one.
    """
    if engine is not None:
        model.use_engine(check_engine(engine))
    clock = ProgressClock(len(files) * 1000, "denoising")  # a thousand ticks a file
    written: list[Path] = []
    for k, f in enumerate(map(Path, files)):
        token.check()
        im = read_image(f)
        file_axes = (axes or im.axes).replace("S", "C")
        samples, _ = to_samples(im.data, file_axes, model.config.get("channels", "independent"))
        per_file = len(samples) * _tiles_of(model, samples[0].shape[1:], tile)
        inner = ProgressClock(per_file, f"{f.name}")
        job = denoise_job(model, im.data, file_axes, tile=tile, tta=tta, token=token, clock=inner)
        out = yield from relay(job, lambda ev, k=k, f=f: clock.tick(
            k * 1000 + int(ev.fraction * 1000), f"file {k + 1}/{len(files)}: {f.name}"))
        grow = growth(model, file_axes)
        scale = {a: v / grow.get(a, 1) for a, v in im.scale.items()}
        written.append(write_image(Path(out_dir) / f"{image_name(f)}_denoised.tif", out, scale, file_axes,
                                   im.unit or "µm", im.channel_names))
        yield clock.tick((k + 1) * 1000, f"{len(written)} of {len(files)} file(s) written")
    return written


def denoise(image: np.ndarray, model: Restorer | str | Path, axes: str | None = None,
            channels: str | None = None, tile: int | None = DEFAULT_TILE, tta: bool = True,
            device: str = "auto", engine: str | None = None, trust_code: bool = False) -> np.ndarray:
    """Denoise ``image`` with a model (object, folder, stored name or bioimage.io package); float32, input's shape."""
    if not isinstance(model, (RestorationModel, PackageRestorer)):
        model = load_restorer(model, resolve_device(device), trust_code)
    if isinstance(model, PackageRestorer) or model.device.type == "cpu":
        set_cpu_threads()
    with torch.inference_mode():
        return run_to_end(denoise_job(model, image, axes, channels, tile, tta, engine=engine))


def load_restorer(ref: str | Path, device: torch.device | None = None, trust_code: bool = False) -> Restorer:
    """A Noise2Void or CARE model folder, a stored name, or an image-to-image bioimage.io package."""
    if is_package(resolve(ref)):
        model = load_model(ref, device, trust_code=trust_code)
    else:
        model = load_restoration(ref, device)
    if not isinstance(model, (RestorationModel, PackageRestorer)):
        raise UserError(f"'{Path(str(ref)).name}' holds a segmentation model, which cannot denoise or restore",
                        "pick a Noise2Void, CARE or image-to-image model")
    return model


def n2v_files_job(files: Sequence[str | Path], out_dir: str | Path, settings: dict[str, Any] | None = None,
                  save_model: str | Path | None = None, axes: str | None = None, device: str = "auto",
                  tile: int | None = DEFAULT_TILE, token: CancelToken = NEVER, engine: str | None = None,
                  tta: bool = True) -> Job:
    """Train Noise2Void on the files themselves, then denoise them; returns the files written.

    The model is saved to ``save_model`` when given. A cancel during training
    keeps the best model so far (saved when asked) and denoises nothing.
    """
    files = [Path(f) for f in files]
    images = [read_image(f) for f in files]
    axes_set = {im.axes for im in images}
    if axes is None and len(axes_set) > 1:
        raise UserError(f"the inputs have different axes ({', '.join(sorted(axes_set))})",
                        "train N2V on images of one kind, or give --axes")
    data = RestorationData([im.data for im in images], None, axes or images[0].axes.replace("S", "C"),
                           [f.name for f in files])
    result = yield from train_job("n2v", data, settings or {}, out=save_model, device=device, token=token)
    if result.stopped is StopReason.CANCELLED:
        return []
    return (yield from denoise_files_job(files, out_dir, result.model, axes, tile, tta=tta, token=token,
                                         engine=engine))
