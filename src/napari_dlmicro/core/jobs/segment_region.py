"""Segmenting only a region of a lazy image (the part of a huge image in view), reading only its chunks.

The region is read with the model's halo around it, normalised with the
whole image's percentiles (from a low pyramid level, so a preview looks like
the full run), segmented, and cropped back. Objects that cross the region's
edge are kept, cut at the edge, as a view would show them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from skimage.segmentation import relabel_sequential

from napari_dlmicro.core.blockwise.halo import ALIGN, segmenter_halo
from napari_dlmicro.core.blockwise.plan import output_axes, read_region
from napari_dlmicro.core.blockwise.reading import BlockReader, frame_ranges
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.jobs.blockwise_setup import check_fits, choose_channels
from napari_dlmicro.core.jobs.segment_input import normalise_block
from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, check_engine
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, Preview, PreviewKind, Progress, ProgressClock, relay, run_to_end

Ranges = dict[int, tuple[list[float], list[float]]]


@dataclass
class RegionResult:
    """Labels of one region, where they sit in the full-resolution labels (axes ``axes``), and the ranges used."""

    labels: np.ndarray  # spatial axes only
    placement: tuple[slice, ...]  # one slice per axis of ``axes`` (length 1 on loop axes)
    axes: str
    n_objects: int
    norm: Ranges  # pass back in to skip re-reading the percentiles on the next preview


def segment_region_job(image: LazyImage, region: dict[str, int | slice], model: str | Path | Segmenter,
                       settings: dict | None = None, channel: int | None = None, tile: int | None = None,
                       device: str = "auto", norm_low: float = 1.0, norm_high: float = 99.8,
                       object_size: int | None = None, norm: Ranges | None = None,
                       token: CancelToken = NEVER, trust_code: bool = False,
                       engine: str = ENGINE_SETTING.default) -> Job:
    """Segment ``region`` of ``image`` at full resolution; returns a :class:`RegionResult`.

    ``region`` maps axis letters to an index (T, and Z for a 2D model; 0 when
    left out) or a slice (Z for a 3D model, Y, X; the whole axis when left out). ``trust_code`` lets a
    bioimage.io package run its own Python code (see :func:`...models.loader.load_model`); ``engine`` is where
    the network runs on the CPU.
    """
    runtime = check_engine(engine)
    model = model if isinstance(model, Segmenter) else get_segmenter(model, resolve_device(device),
                                                                     trust_code=trust_code)
    model.use_engine(runtime)
    check_fits(image, model)
    channels = choose_channels(image, model, channel)
    axes, n_loop = output_axes(image.axes, model.info.spatial_ndim)
    sizes = {a: image.shape[image.axes.index(a)] for a in axes}
    loop = tuple(_index(region.get(a, 0), a, sizes[a]) for a in axes[:n_loop])
    core = tuple(_slice(region.get(a), a, sizes[a]) for a in axes[n_loop:])
    s = {**model.default_settings(), **(settings or {})}
    halo = segmenter_halo(model, s, len(core), object_size)
    read = read_region(core, halo, tuple(sizes[a] for a in axes[n_loop:]), (ALIGN,) * len(core))
    clock = ProgressClock(3, "preview of the region")
    yield clock.tick(0, "reading the region")
    if norm is None:
        norm = frame_ranges(image, norm_low, norm_high, channels)
    reader = BlockReader(image.source, image.axes, axes, n_loop, channels)
    raw = reader.read(loop, read)
    token.check()
    lo, hi = norm[loop[0] if axes.startswith("T") else 0]
    x = normalise_block(raw, np.asarray(lo, np.float32), np.asarray(hi, np.float32))
    yield clock.tick(1, "segmenting the region")
    with torch.inference_mode():
        labels = yield from relay(model.segment(x, s, token, tile), lambda ev: Progress(
            1, 3, f"segmenting the region: {ev.message}", None, ev.elapsed_s))
    inner = tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, read))
    labels = np.asarray(labels)[inner]
    if not model.info.class_map:
        labels = relabel_sequential(labels)[0]
    labels = labels.astype(np.uint32)
    placement = tuple(slice(i, i + 1) for i in loop) + core
    yield Preview(labels.reshape(tuple(p.stop - p.start for p in placement)), placement, PreviewKind.LABELS)
    yield clock.tick(3, "done")
    n = len(np.unique(labels[labels > 0]))
    return RegionResult(labels, placement, axes, n, norm)


def _index(value: int | slice, axis: str, n: int) -> int:
    if isinstance(value, slice):
        start = value.indices(n)[0]
        if len(range(*value.indices(n))) != 1:
            raise UserError(f"the region must fix one {axis} index for this model", f"give {axis} as one number")
        return start
    if not 0 <= int(value) < n:
        raise UserError(f"{axis} index {value} is outside the image (0 to {n - 1})", "pick an index in range")
    return int(value)


def _slice(value: int | slice | None, axis: str, n: int) -> slice:
    if value is None:
        return slice(0, n)
    if not isinstance(value, slice):
        value = slice(int(value), int(value) + 1)
    start, stop, _ = value.indices(n)
    if stop <= start:
        raise UserError(f"the region is empty along {axis}", "pan to the image, or give a larger region")
    return slice(start, stop)


def segment_region(image: LazyImage, region: dict[str, int | slice], model: str | Path | Segmenter,
                   **kwargs) -> RegionResult:
    """Headless :func:`segment_region_job`."""
    return run_to_end(segment_region_job(image, region, model, **kwargs))
