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

from napari_dlmicro.core.data.normalize import percentile_range
from napari_dlmicro.core.io.axes import default_axes, normalize_axes, to_canonical
from napari_dlmicro.core.jobs.segment_input import (
    as_numbers,
    check_model_fits,
    check_pixels,
    normalise_block,
    pick_channels,
)
from napari_dlmicro.core.labels.measure import measure_frames
from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, check_engine
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import (
    Job,
    Level,
    Notice,
    Preview,
    PreviewKind,
    Progress,
    ProgressClock,
    run_to_end,
)
from napari_dlmicro.core.settings import Setting

# The job's own settings (a model's settings come with the model); the CLI's flags and the dock's fields.
SEGMENT_SETTINGS = (
    Setting("tile", "Tile", 1024, int, 0, 16384, 128, "Tile size in pixels (0: the whole image at once); "
            "lower it if memory runs out", cli="--tile"),
    Setting("norm_low", "Low percentile", 1.0, float, 0.0, 100.0, 0.5,
            "Intensity percentile mapped to 0 before the model"),
    Setting("norm_high", "High percentile", 99.8, float, 0.0, 100.0, 0.1,
            "Intensity percentile mapped to 1 before the model"),
    Setting("channel", "Channel", None, int, 0, 255, 1, "Channel to segment with a one-channel model (empty: all)",
            optional=True),
    ENGINE_SETTING,
)


@dataclass(frozen=True)
class SegmentJob:
    """What to segment, with which model and settings.

    ``region`` limits the work to part of the image (the preview): an int
    fixes an axis (one time point, one plane), a slice crops it. ``scale`` is
    the physical pixel size per axis letter, for the measurements.
    ``engine`` is where the network runs on the CPU (:mod:`...models.engines`);
    ``trust_code`` allows a bioimage.io package whose only usable weights need
    its own Python code to run that code.
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
    engine: str = ENGINE_SETTING.default
    trust_code: bool = False


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


def _units(shape: tuple[int, ...], axes: str, model_ndim: int) -> tuple[list[tuple[int, ...]], int]:
    """Index tuples over the loop axes (T, and Z for a 2D model), and how many leading axes they fix."""
    spatial = 3 if ("Z" in axes and model_ndim == 3) else 2
    loop = len(axes) - spatial
    return list(product(*(range(n) for n in shape[:loop]))), loop


def segment_job(job: SegmentJob, token: CancelToken = NEVER) -> Job:
    """The segmentation job generator; returns a :class:`SegmentResult`."""
    data = as_numbers(np.asarray(job.image))
    given_axes = job.axes or default_axes(data.ndim, data.shape)
    axes = normalize_axes(given_axes, data.ndim)
    data, axes = to_canonical(data, axes)
    notes = check_pixels(data)
    for n in notes:
        yield Notice(n, Level.WARNING)
    engine = check_engine(job.engine)
    model = job.model if isinstance(job.model, Segmenter) else get_segmenter(job.model, resolve_device(job.device),
                                                                            trust_code=job.trust_code)
    model.use_engine(engine)
    data = pick_channels(data, axes, given_axes, model, job.channel)
    axes_nc = axes.replace("C", "")
    check_model_fits(data.shape[:-1], axes_nc, model)
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
        if frame_key not in ranges and not model.info.normalises:
            frame = data[frame_key] if frame_axes else data
            lo, hi = percentile_range(frame, job.norm_low, job.norm_high, axis=tuple(range(frame.ndim - 1)))
            # one value per channel: the frame may have more axes than the block (a z-stack cut into planes)
            ranges[frame_key] = (lo.reshape(-1), hi.reshape(-1))
        crop = tuple(placement[n_loop:])
        block = data[unit][crop + (slice(None),)]
        if model.info.normalises:  # the model's own declared preprocessing takes the raw pixels
            block = np.asarray(block, np.float32)
        else:
            block = normalise_block(block, *ranges[frame_key])
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
                region_ = tuple(slice(i, i + 1) for i in out_index) + ev.region
                yield Preview(data_.reshape(_block_shape(region_, out_shape)), region_, PreviewKind.LABELS)
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
        yield clock.tick(clock.total, "measuring the objects")
        table = offload.call(measure_frames, labels, intensity, axes_nc, job.scale, class_map, token=token)
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
