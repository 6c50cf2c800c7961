"""The segmentation job: any image layout in, labels and measurements out.

One job for the dock, the CLI and Python: it checks the input, picks the
channel, normalises each frame as a whole, runs the model frame by frame
(and plane by plane when a 2D model meets a z-stack), streams label tiles as
``Preview`` events placed in the full output, and returns a
:class:`SegmentResult`. Object ids are made unique across planes and frames;
class maps (semantic models, ``ModelInfo.class_map``) keep their class ids.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from . import offload
from .axes import default_axes, normalize_axes, to_canonical
from .cancel import NEVER, CancelToken
from .devices import resolve_device
from .errors import UserError
from .events import Job, Notice, Preview, Progress, ProgressClock, run_to_end
from .measure import measure_frames
from .models.base import Segmenter
from .models.cache import get_segmenter
from .normalize import percentile_range

MIN_SIZE = 8  # pixels along Y or X below which nothing can be segmented


@dataclass(frozen=True)
class SegmentJob:
    """What to segment, with which model and settings.

    ``region`` limits the work to part of the image (the preview): an int
    fixes an axis (one time point, one plane), a slice crops it. ``scale`` is
    the physical pixel size per axis letter, for the measurements.
    """

    image: np.ndarray
    model: str | Path | Segmenter
    axes: str | None = None
    channel: int | None = None
    settings: dict[str, float] = field(default_factory=dict)
    tile: int | None = None
    device: str = "auto"
    norm_low: float = 1.0
    norm_high: float = 99.8
    region: dict[str, int | slice] | None = None
    scale: dict[str, float] | None = None
    measure: bool = True


@dataclass
class SegmentResult:
    """Labels (axes without C), where they belong in the full image, and the table."""

    labels: np.ndarray
    axes: str
    model_name: str
    placement: tuple[slice, ...]  # where ``labels`` sit in the full (non-C) output
    full_shape: tuple[int, ...]
    table: dict[str, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)
    class_map: bool = False  # ``labels`` holds class ids (a semantic model), not objects

    @property
    def n_objects(self) -> int:
        """Distinct non-zero ids: objects, or the classes found for a class map."""
        return len(np.unique(self.labels[self.labels > 0]))


def _check_pixels(data: np.ndarray) -> list[str]:
    if data.size == 0:
        raise UserError("the image is empty (it has no pixels)", "open or select an image that has data")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise UserError(f"pixels of type {data.dtype} cannot be segmented", "use a numeric image")
    if np.iscomplexobj(data):
        raise UserError("the image has complex pixels", "take its magnitude first")
    notes = []
    if np.issubdtype(data.dtype, np.floating):
        finite = np.isfinite(data)
        if not finite.any():
            raise UserError("every pixel of the image is NaN or infinite", "check how the image was produced")
        bad = int(finite.size - finite.sum())
        if bad:
            notes.append(f"{bad} pixels are NaN or infinite; they are treated as background")
        values = data[finite]
    else:
        values = data
    lo, hi = values.min(), values.max()
    if lo == hi:
        raise UserError(f"the image is constant (every pixel is {lo}), so there is nothing to segment",
                        "check that the right layer and channel are selected")
    return notes


def _pick_channels(data: np.ndarray, axes: str, model: Segmenter, channel: int | None) -> np.ndarray:
    """Canonical data (…, C) with the channels the model takes."""
    info = model.info
    if "C" not in axes:
        data = data[..., None]
    n = data.shape[-1]
    if channel is not None:
        if not 0 <= channel < n:
            raise UserError(f"channel {channel} does not exist: the image has {n} channel(s)", f"pick 0 to {n - 1}")
        data = data[..., channel : channel + 1]
        n = 1
    if info.kind == "cellpose":
        if n > 3:
            raise UserError(f"the image has {n} channels; Cellpose-SAM takes up to 3",
                            "pick one channel, or make a 3-channel image of the stains you want")
        return data
    if n != info.n_channels:
        if info.n_channels == 1:
            what = "an RGB image" if n in (3, 4) else f"{n} channels"
            raise UserError(f"{info.name} takes one channel but the input has {what}",
                            "pick a channel (dock: Channel; CLI: --channel N), or for H&E use stardist:2D_versatile_he")
        raise UserError(f"{info.name} takes {info.n_channels} channels but the input has {n}",
                        f"give a {info.n_channels}-channel image (RGB for H&E models)")
    return data


def _units(shape: tuple[int, ...], axes: str, model_ndim: int) -> tuple[list[tuple[int, ...]], int]:
    """Index tuples over the loop axes (T, and Z for a 2D model), and how many leading axes they fix."""
    spatial = 3 if ("Z" in axes and model_ndim == 3) else 2
    loop = len(axes) - spatial
    return list(product(*(range(n) for n in shape[:loop]))), loop


def segment_job(job: SegmentJob, token: CancelToken = NEVER) -> Job:
    """The segmentation job generator; returns a :class:`SegmentResult`."""
    data = np.asarray(job.image)
    axes = normalize_axes(job.axes or default_axes(data.ndim, data.shape), data.ndim)
    data, axes = to_canonical(data, axes)
    notes = _check_pixels(data)
    for n in notes:
        yield Notice(n, "warning")
    model = job.model if isinstance(job.model, Segmenter) else get_segmenter(job.model, resolve_device(job.device))
    data = _pick_channels(data, axes, model, job.channel)
    axes_nc = axes.replace("C", "")
    if "Z" not in axes_nc and model.info.spatial_ndim == 3 and not model.info.also_2d:
        raise UserError(f"{model.info.name} is a 3D model but the image has no Z axis",
                        "use a 2D model, or set the axes so that one of them is Z")
    if min(data.shape[axes_nc.index("Y")], data.shape[axes_nc.index("X")]) < MIN_SIZE:
        raise UserError(f"the image is only {data.shape[axes_nc.index('Y')]}x{data.shape[axes_nc.index('X')]} pixels",
                        f"segmentation needs at least {MIN_SIZE}x{MIN_SIZE}")
    full_shape = data.shape[:-1]
    if "Z" in axes_nc and model.info.spatial_ndim == 2:
        msg = f"{model.info.name} is a 2D model: the z-stack is segmented plane by plane" + (
            "" if model.info.class_map else " (objects are not joined across planes)")
        notes.append(msg)
        yield Notice(msg)

    region = job.region or {}
    placement = tuple(
        slice(region[a], region[a] + 1) if isinstance(region.get(a), int)
        else (region[a] if isinstance(region.get(a), slice) else slice(0, n))
        for a, n in zip(axes_nc, full_shape)
    )
    placement = tuple(slice(*s.indices(n)[:2]) for s, n in zip(placement, full_shape))
    units, n_loop = _units(full_shape, axes_nc, model.info.spatial_ndim)
    frame_axes = 1 if "T" in axes_nc else 0  # normalise per time point
    units = [u for u in units if all(placement[i].start <= u[i] < placement[i].stop for i in range(n_loop))]
    out_shape = tuple(s.stop - s.start for s in placement)
    labels = np.zeros(out_shape, np.uint32)
    clock = ProgressClock(len(units) * 100, "segmenting")
    settings = {**model.default_settings(), **(job.settings or {})}
    class_map = model.info.class_map  # class ids stay the same in every plane and frame: never offset
    next_id = 0
    ranges: dict[tuple, tuple] = {}
    for k, unit in enumerate(units):
        token.check()
        frame_key = unit[:frame_axes]
        if frame_key not in ranges:
            frame = data[frame_key] if frame_axes else data
            lo, hi = percentile_range(frame, job.norm_low, job.norm_high, axis=tuple(range(frame.ndim - 1)))
            # one value per channel: the frame may have more axes than the block (a z-stack cut into planes)
            ranges[frame_key] = (lo.reshape(-1), hi.reshape(-1))
        lo, hi = ranges[frame_key]
        crop = tuple(placement[n_loop:])
        block = data[unit][crop + (slice(None),)]
        block = np.nan_to_num((block.astype(np.float32) - lo) / (hi - lo + 1e-20), nan=0.0, posinf=0.0, neginf=0.0)
        out_index = tuple(u - placement[i].start for i, u in enumerate(unit))
        gen = model.segment(block, settings, token, job.tile)
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                unit_labels = np.asarray(stop.value)
                break
            if isinstance(ev, Progress):
                yield clock.tick(k * 100 + int(ev.fraction * 100), _unit_message(unit, axes_nc, len(units), ev.message))
            elif isinstance(ev, Preview):
                data_ = np.where(ev.data > 0, ev.data + next_id, 0)
                region_ = tuple(slice(i, i + 1) for i in out_index) + (ev.region or tuple(slice(None) for _ in crop))
                yield Preview(data_.reshape(_block_shape(region_, out_shape)), region_, "labels")
            else:
                yield ev
        unit_labels = np.where(unit_labels > 0, unit_labels.astype(np.int64) + next_id, 0)
        labels[out_index] = unit_labels
        if not class_map:
            next_id = int(max(next_id, unit_labels.max()))
        yield clock.tick((k + 1) * 100, _unit_message(unit, axes_nc, len(units), "done"))
    labels = _compact_dtype(labels)
    table = None
    if job.measure:
        intensity = data[tuple(placement) + (0,)] if data.shape[-1] == 1 else None
        table = offload.call(measure_frames, labels, intensity, axes_nc, job.scale, class_map)
    return SegmentResult(labels, axes_nc, model.info.name, placement, full_shape, table, notes, class_map)


def _block_shape(region: tuple[slice, ...], out_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(len(range(*s.indices(n))) for s, n in zip(region, out_shape))


def _unit_message(unit: tuple[int, ...], axes: str, n_units: int, inner: str) -> str:
    if n_units <= 1:
        return inner
    names = {"T": "frame", "Z": "plane"}
    where = ", ".join(f"{names.get(a, a)} {i + 1}" for a, i in zip(axes, unit))
    return f"{where} · {inner}"


def _compact_dtype(labels: np.ndarray) -> np.ndarray:
    """uint16 while ids fit, uint32 beyond 65,535 objects."""
    return labels.astype(np.uint16) if labels.max(initial=0) <= np.iinfo(np.uint16).max else labels.astype(np.uint32)


def segment(image: np.ndarray, model: str | Path | Segmenter, **kwargs: Any) -> SegmentResult:
    """Segment an array headless (Python API); keyword arguments as :class:`SegmentJob`."""
    return run_to_end(segment_job(SegmentJob(image=image, model=model, **kwargs)))


def segment_file_job(path: str | Path, outdir: str | Path, model: str | Path | Segmenter, token: CancelToken = NEVER,
                     **kwargs: Any) -> Job:
    """Segment one TIFF file; writes ``<stem>_labels.tif`` and ``<stem>_measurements.csv``.

    Returns the two paths. Axes and pixel size come from the file unless given.
    """
    from .io import image_name, read_image, write_labels
    from .measure import write_csv

    img = read_image(path)
    axes = kwargs.pop("axes", None) or img.axes
    scale = kwargs.pop("scale", None) or img.scale or None
    result = yield from segment_job(SegmentJob(image=img.data, model=model, axes=axes, scale=scale, **kwargs), token)
    outdir = Path(outdir)
    stem = image_name(path)
    labels_path = write_labels(outdir / f"{stem}_labels.tif", result.labels, scale=scale, axes=result.axes)
    csv_path = write_csv(outdir / f"{stem}_measurements.csv", result.table or {"label": np.zeros(0, int)})
    return labels_path, csv_path, result


def segment_file(path: str | Path, outdir: str | Path, model: str | Path | Segmenter, **kwargs: Any):
    """Headless: segment a TIFF file into ``outdir`` (see :func:`segment_file_job`)."""
    return run_to_end(segment_file_job(path, outdir, model, **kwargs))
