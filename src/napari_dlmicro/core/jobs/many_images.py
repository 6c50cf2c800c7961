"""Thousands of small images on dask.distributed: the files of a folder, the fields of a plate.

Each file or field is one task: the worker (holding the model, loaded once)
reads it whole, segments it in memory and writes its outputs itself, each
complete or not at all. TIFF files keep their usual outputs
(``<stem>_labels.tif``, ``<stem>_measurements.csv``); plate fields become
NGFF label images at ``<row>/<col>/<field>`` of one labels store (or in each
field's own ``labels/`` group), and their measurements one table with
``well`` and ``field`` columns. With ``resume``, what is already written is
skipped.
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from napari_dlmicro.core.blockwise.failures import kept_failing, stop_if_fatal, why
from napari_dlmicro.core.blockwise.state import write_guard
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import image_name
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.ngff_write import (
    COMPLETE,
    OutputSpec,
    create_output,
    downsample,
    finish_output,
    output_state,
    pyramid_shapes,
)
from napari_dlmicro.core.jobs.segment import SegmentJob, segment_job
from napari_dlmicro.core.jobs.segment_files import segment_file_job
from napari_dlmicro.core.labels.tables import concat_tables, write_table
from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice, engine, processes, run_tasks, scatter, worker_model
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, Level, Notice, ProgressClock, run_to_end
from napari_dlmicro.core.runtime.threads import set_cpu_threads


@dataclass
class ManyContext:
    """What every task of a many-image run shares (sent to each worker once)."""

    run_id: str
    model: Segmenter | str
    device: str
    outdir: str
    kwargs: dict[str, Any]  # SegmentJob settings: axes, channel, settings, tile, norm_low, norm_high
    resume: bool
    torch_threads: int = 1
    labels_store: str | None = None  # plates: the labels store
    into_input: bool = False
    label_name: str = "dlmicro"
    trust_code: bool = False  # a named bioimage.io package may run its own code (the user confirmed it)


@dataclass
class ImageDone:
    """One file or field finished (or skipped, already done on resume)."""

    source: str
    labels: str
    n_objects: int
    table: dict[str, np.ndarray] | None = field(default=None, repr=False)
    skipped: bool = False


def _model(ctx: ManyContext) -> tuple[Segmenter, Any]:
    def load() -> Segmenter:
        set_cpu_threads(ctx.torch_threads)
        if isinstance(ctx.model, Segmenter):
            return ctx.model
        return get_segmenter(ctx.model, resolve_device(ctx.device), trust_code=ctx.trust_code)
    return worker_model((ctx.run_id, "many"), load)


def segment_file_task(path: str, ctx: ManyContext) -> ImageDone:
    """Segment one TIFF file into ``outdir`` (a worker's task)."""
    stem = image_name(path)
    labels = Path(ctx.outdir) / f"{stem}_labels.tif"
    if ctx.resume and labels.is_file() and (Path(ctx.outdir) / f"{stem}_measurements.csv").is_file():
        return ImageDone(path, str(labels), -1, skipped=True)
    model, lock = _model(ctx)
    with lock, torch.inference_mode():
        done = run_to_end(segment_file_job(path, ctx.outdir, model, **ctx.kwargs))
    return ImageDone(path, str(done.labels), done.result.n_objects)


def segment_field_task(image: LazyImage, ctx: ManyContext) -> ImageDone:
    """Segment one plate field whole and write its NGFF label image (a worker's task)."""
    model, lock = _model(ctx)
    spec = _field_output(image, ctx)
    if ctx.resume and output_state(spec.path) == COMPLETE:
        return ImageDone(image.where, str(spec.path), -1, skipped=True)
    data = image.source.read(tuple(slice(None) for _ in image.axes))
    with lock, torch.inference_mode():
        result = run_to_end(segment_job(SegmentJob(image=data, model=model, axes=image.axes, scale=image.scale or None,
                                                   **ctx.kwargs)))
    labels = result.labels.astype(np.uint32)
    spec.axes = result.axes
    spec.level_shapes = pyramid_shapes(labels.shape, result.axes)
    chunks = dict(zip(image.axes, image.chunks))
    spec.chunks = [min(n, chunks.get(a, 1024)) if a in "ZYX" else 1 for a, n in zip(result.axes, labels.shape)]
    spec = create_output(spec, resume=ctx.resume)
    with write_guard(spec.path):
        level = labels
        for i, shape in enumerate(spec.level_shapes):
            if i:
                level = downsample(level, tuple(max(1, round(a / b)) for a, b in zip(level.shape, shape)), True)
            spec.array(i)[...] = level[tuple(slice(0, n) for n in shape)]
    finish_output(spec, {"objects": result.n_objects})
    well, _, fov = image.where.rpartition("/")
    table = result.table or {"label": np.zeros(0, np.int64)}
    n = len(table["label"])
    return ImageDone(image.where, str(spec.path), result.n_objects,
                     {"well": np.array([well.replace("/", "")] * n), "field": np.array([fov] * n), **table})


def _field_output(image: LazyImage, ctx: ManyContext) -> OutputSpec:
    fmt = 3 if (image.ngff_version or "0.4") >= "0.5" else 2
    common = dict(axes="YX", level_shapes=[[1, 1]], chunks=[1, 1], dtype="uint32", kind="labels", zarr_format=fmt,
                  scale=dict(image.scale), translation=dict(image.translation), unit=image.unit)
    if ctx.into_input:
        return OutputSpec(store=str(image.path), group=f"labels/{ctx.label_name}", name=ctx.label_name, **common)
    return OutputSpec(store=str(ctx.labels_store), group=image.where, name=f"{image.name} labels", **common)


def segment_many_job(items: Sequence[str | Path | LazyImage], outdir: str | Path, model: str | Path | Segmenter,
                     cluster: ClusterChoice | None = None, resume: bool = False, labels_store: Path | None = None,
                     measurements: Path | None = None, into_input: bool = False, label_name: str = "dlmicro",
                     device: str = "auto", token: CancelToken = NEVER, trust_code: bool = False,
                     **kwargs: Any) -> Job:
    """Segment TIFF files (paths) or plate fields (:class:`LazyImage`) spread over the workers.

    Returns the :class:`ImageDone` list. A file or field that fails is named
    and the rest go on; the job then raises a :class:`UserError` listing them.
    ``trust_code`` lets a named bioimage.io package run its own Python code.
    """
    items = list(items)
    fields = bool(items) and isinstance(items[0], LazyImage)
    loaded = model if isinstance(model, Segmenter) else get_segmenter(model, resolve_device(device),
                                                                      trust_code=trust_code)
    if fields and not into_input:
        if labels_store is None:
            raise UserError("no labels store was given for the plate", "give an output folder (-o)")
        _plate_root(labels_store, items[0], resume)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    done: list[ImageDone] = []
    failed: list[tuple[str, BaseException]] = []
    with engine(cluster, token) as eng:
        if eng.dashboard:
            yield Notice(f"dask dashboard: {eng.dashboard}")
        shipped = loaded if (isinstance(model, Segmenter) or not eng.own or not processes(eng)) else str(model)
        ctx = ManyContext(secrets.token_hex(6), shipped, device, str(outdir), kwargs, resume, eng.torch_threads,
                          str(labels_store) if labels_store else None, into_input, label_name, trust_code)
        shared = scatter(eng, ctx, token)
        task = segment_field_task if fields else segment_file_task
        clock = ProgressClock(len(items), "segmenting images")
        for outcome in run_tasks(eng.client, task, [i if fields else str(i) for i in items], shared, token=token,
                                 key="image"):
            if outcome is None:
                continue
            name = outcome.item.where if fields else Path(outcome.item).name
            if outcome.error is not None:
                stop_if_fatal(outcome.error, labels_store or outdir)
                failed.append((name, outcome.error))
                yield Notice(f"{name} failed: {why(outcome.error)}", Level.WARNING)
            else:
                done.append(outcome.result)
            yield clock.tick(len(done) + len(failed), f"{len(done)} of {len(items)} image(s) done")
    if fields and measurements is not None:
        write_table(measurements, concat_tables([d.table for d in done if d.table is not None]))
    if failed:
        raise kept_failing(failed, len(items), "image(s)", None)
    return done


def _plate_root(store: Path, first: LazyImage, resume: bool) -> None:
    """The labels store of a plate: refused if there and not resuming."""
    if store.exists() and not resume:
        raise UserError(f"the output {store} already exists", "remove it, choose another output folder, or "
                        "continue with --resume")
    if not store.exists():
        fmt = 3 if (first.ngff_version or "0.4") >= "0.5" else 2
        zarr.open_group(str(store), mode="w-", zarr_format=fmt)
