"""Segmenting an image too big for memory, block by block on dask.distributed, into an NGFF label image.

Three passes, each a set of independent tasks spread over the workers:

1. *segment*: every block is read with its halo, segmented, and keeps the
   objects whose seeds lie in its core (:mod:`napari_dlmicro.core.blockwise.seams`);
   provisional ids go into the run folder's ``raw.zarr``;
2. *compose*: with the id offsets known, every core gets its final ids 1..N,
   its neighbours' spilled pixels included, in the output's level 0;
3. *pyramid*: lower levels from the one above, chunk-aligned regions at a time.

Then the measurements of every block are merged into one table and the
output is marked complete. The job yields a :class:`Progress` per finished
task (ETA included), the dashboard link as a :class:`Notice`, and (with
``previews``) a :class:`Preview` per finished block: ``region`` in the full
resolution labels' coordinates, ``data`` that block's labels (provisional ids
after pass 1, final ids after pass 2).
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from napari_dlmicro.core.blockwise.failures import why
from napari_dlmicro.core.blockwise.halo import segmenter_halo
from napari_dlmicro.core.blockwise.passes import block_pass
from napari_dlmicro.core.blockwise.plan import Block, BlockPlan
from napari_dlmicro.core.blockwise.reading import BlockReader, frame_ranges
from napari_dlmicro.core.blockwise.segment_tasks import (
    TABLE_PREFIX,
    BlockReport,
    SegmentContext,
    build_level,
    compose_block,
    offsets_of,
    segment_block,
)
from napari_dlmicro.core.blockwise.state import RUN_FOLDER, RunState
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.ngff_write import OutputSpec, create_output, finish_output
from napari_dlmicro.core.jobs.blockwise_setup import (
    check_fits,
    choose_channels,
    labels_chunks,
    labels_output,
    labels_plan,
)
from napari_dlmicro.core.labels.tables import concat_tables, write_table
from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, check_engine
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice, Engine, engine, processes, run_tasks, scatter
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import (
    Job,
    Level,
    Notice,
    OutputCreated,
    Preview,
    PreviewKind,
    ProgressClock,
    run_to_end,
)

DEFAULT_BLOCK = 1024
LEVEL_REGION = 4096  # pyramid tasks cover this many pixels along Y and X of their level


@dataclass(frozen=True)
class BlockwiseSegmentJob:
    """What to segment blockwise, where the labels go, and on which cluster.

    ``output`` is the label store to create (``<stem>_labels.ome.zarr``);
    with ``labels_into_input`` the labels go into the input's
    ``labels/<label_name>`` group instead. ``measurements`` is the CSV path
    (a ``.parquet`` is written beside it). ``object_size`` is the largest
    object's diameter in pixels (default: the model kind's). ``trust_code``
    lets a bioimage.io package run its own Python code, here and in the workers.
    ``engine`` is where each worker runs the network on the CPU (auto, torch,
    onnxruntime, openvino): a worker builds its own runtime session on its first
    block and keeps it (sessions do not travel between processes; the model does).
    """

    image: LazyImage
    model: str | Path | Segmenter
    output: Path | None = None
    labels_into_input: bool = False
    label_name: str = "dlmicro"
    block: int = DEFAULT_BLOCK
    resume: bool = False
    cluster: ClusterChoice = field(default_factory=ClusterChoice)
    settings: dict[str, Any] = field(default_factory=dict)
    tile: int | None = None
    device: str = "auto"
    channel: int | None = None
    norm_low: float = 1.0
    norm_high: float = 99.8
    object_size: int | None = None
    measure: bool = True
    measurements: Path | None = None
    previews: bool = True
    trust_code: bool = False
    engine: str = ENGINE_SETTING.default


@dataclass
class BlockwiseResult:
    """A finished blockwise segmentation."""

    labels: Path  # the NGFF label image's group
    output: OutputSpec
    n_objects: int
    tables: list[Path]
    blocks: int
    conflicts: int  # seam pixels two blocks disagreed on (0 when the halo is large enough)
    cut: int  # objects larger than the largest halo tried
    seconds: float
    peak_rss: int = 0  # the largest peak memory of any worker process, bytes
    notes: list[str] = field(default_factory=list)


def _load(job: BlockwiseSegmentJob) -> Segmenter:
    if isinstance(job.model, Segmenter):
        return job.model
    return get_segmenter(job.model, resolve_device(job.device), trust_code=job.trust_code)


def blockwise_segment_job(job: BlockwiseSegmentJob, token: CancelToken = NEVER) -> Job:
    """The blockwise segmentation job generator; returns a :class:`BlockwiseResult`."""
    start = time.perf_counter()
    image = job.image
    runtime = check_engine(job.engine)
    model = _load(job)
    check_fits(image, model)
    channels = choose_channels(image, model, job.channel)
    settings = {**model.default_settings(), **(job.settings or {})}
    ndim = 3 if (model.info.spatial_ndim == 3 and "Z" in image.axes) else 2
    halo = segmenter_halo(model, settings, ndim, job.object_size)
    plan = labels_plan(image, model.info.spatial_ndim, job.block, halo)
    spec = labels_output(image, plan, labels_chunks(image, plan.out_axes, plan.n_loop), job.output,
                         job.labels_into_input, job.label_name)
    spec = create_output(spec, job.resume)
    yield OutputCreated(spec.path)
    state = RunState(spec.path / RUN_FOLDER)
    norm = frame_ranges(image, job.norm_low, job.norm_high, channels)
    manifest = {"input": str(image.path or image.name), "where": image.where, "shape": list(image.shape),
                "model": model.info.name, "settings": {k: float(v) if isinstance(v, (int, float)) else v
                                                       for k, v in settings.items()},
                "plan": plan.to_json(), "channels": list(channels) if channels else None, "tile": job.tile}
    state.create({**manifest, "norm": {str(k): v for k, v in norm.items()}}, job.resume)
    norm = {int(k): tuple(v) for k, v in state.manifest()["norm"].items()}  # a resumed run keeps its own
    if not state.raw_path.exists():
        zarr.create_array(str(state.raw_path), shape=plan.out_shape, chunks=tuple(spec.chunks), dtype="uint64",
                          fill_value=0, zarr_format=3)
    spacing = tuple(image.scale.get(a, 1.0) for a in plan.spatial_axes) if image.scale else None
    reader = BlockReader(image.source, image.axes, plan.out_axes, plan.n_loop, channels)
    with engine(job.cluster, token) as eng:
        if eng.dashboard:
            yield Notice(f"dask dashboard: {eng.dashboard}")
        ctx = SegmentContext(
            run_id=secrets.token_hex(6), model=_shipped(job.model, model, eng), device=job.device,
            settings=settings, tile=job.tile, reader=reader, norm=norm, plan=plan, output=spec.to_json(),
            run_folder=str(state.folder), spacing=spacing, unit="um" if image.unit in ("µm", "um") else
            (image.unit or "um"), class_map=model.info.class_map, measure=job.measure,
            torch_threads=eng.torch_threads, max_halo=plan.block, trust_code=job.trust_code, engine=runtime)
        shared = scatter(eng, ctx, token)
        reports = yield from _segment_pass(eng, plan, shared, state, job, spec, token)
        cut = sum(r.cut for r in reports.values())
        if cut:
            yield Notice(f"{cut} object(s) are larger than the largest halo tried and were cut at block "
                         "edges: raise the block size (dock: Big images › Block; CLI: --block)", Level.WARNING)
        conflicts = 0
        if not model.info.class_map:
            conflicts = yield from _compose_pass(eng, plan, shared, state, reports, job, spec, token)
        yield from pyramid_pass(eng, spec, token, state)
    tables = []
    n_objects = sum(r.objects for r in reports.values())
    if job.measure and job.measurements is not None:
        tables = write_table(job.measurements, _merged_table(plan, state, model.info.class_map))
    labels = finish_output(spec, {"objects": n_objects, "model": model.info.name, "conflicts": conflicts,
                                  "run": manifest})
    state.remove()
    return BlockwiseResult(labels, spec, n_objects, tables, len(plan.blocks), conflicts, cut,
                           time.perf_counter() - start, peak_rss=max((r.peak_rss for r in reports.values()), default=0))


def _shipped(given: str | Path | Segmenter, model: Segmenter, eng: Engine) -> Segmenter | str:
    """What workers get: the loaded model itself, unless it is named and the workers are local processes.

    Local worker processes load a named model themselves (from the same disk,
    once each); a cluster's workers get the model, as they may not see the folder.
    """
    if isinstance(given, Segmenter) or not eng.own or not processes(eng):
        return model
    path = Path(str(given)).expanduser()
    return str(path.resolve()) if path.exists() else str(given)


def _segment_pass(eng: Engine, plan: BlockPlan, ctx, state: RunState, job: BlockwiseSegmentJob, spec: OutputSpec,
                  token: CancelToken) -> Job:
    done = state.done_blocks()
    todo = [b for b in plan.blocks if b.key not in done]
    reports: dict[int, BlockReport] = {}
    for b in plan.blocks:
        if b.key in done:
            reports[b.number] = BlockReport(b.number, int(state.load_block(b, ("count",))["count"]), skipped=True)
    if done:
        yield Notice(f"resuming: {len(done)} of {len(plan.blocks)} block(s) were already segmented")
    raw = zarr.open_array(str(state.raw_path), mode="r") if job.previews else None

    def segmented(block: Block, report: BlockReport) -> Preview | None:
        reports[block.number] = report
        return None if raw is None else Preview(np.asarray(raw[block.out_index]), block.out_index, PreviewKind.LABELS)

    yield from block_pass(eng, segment_block, todo, ctx, plan, state, spec, token, "segmenting blocks", "segmented",
                          segmented)
    return reports


def _compose_pass(eng: Engine, plan: BlockPlan, ctx, state: RunState, reports: dict[int, BlockReport],
                  job: BlockwiseSegmentJob, spec: OutputSpec, token: CancelToken) -> Job:
    offsets, digest = offsets_of([reports[b.number].objects for b in plan.blocks])
    clock = ProgressClock(len(plan.blocks), "numbering objects across blocks")
    final = spec.array(0, mode="r") if job.previews else None
    conflicts = 0
    finished = 0
    for outcome in run_tasks(eng.client, compose_block, list(plan.blocks), ctx, offsets, digest, token=token,
                             on_cancel=state.ask_cancel, key="compose"):
        if outcome is None:
            continue
        if outcome.error is not None:
            raise outcome.error if isinstance(outcome.error, (UserError, Cancelled)) else UserError(
                f"block {outcome.item.where(plan.out_axes)} could not be numbered ({why(outcome.error)})",
                "run again with --resume")
        finished += 1
        conflicts += int(outcome.result)
        if final is not None:
            yield Preview(np.asarray(final[outcome.item.out_index]), outcome.item.out_index, PreviewKind.LABELS)
        yield clock.tick(finished, f"block {finished}/{len(plan.blocks)} numbered")
    return conflicts


def pyramid_pass(eng: Engine, spec: OutputSpec, token: CancelToken, state: RunState) -> Job:
    """Build every lower pyramid level of ``spec`` from the one above, in parallel regions."""
    for level in range(1, len(spec.level_shapes)):
        shape = spec.level_shapes[level]
        step = [1 if a not in "YX" else max(c, (LEVEL_REGION // c) * c) for a, c in zip(spec.axes, spec.chunks)]
        grid = [-(-n // s) for n, s in zip(shape, step)]
        regions = [tuple(slice(i * s, min(n, (i + 1) * s)) for i, s, n in zip(corner, step, shape))
                   for corner in np.ndindex(*grid)]
        clock = ProgressClock(len(regions), f"pyramid level {level}")
        finished = 0
        for outcome in run_tasks(eng.client, build_level, regions, spec.to_json(), level, token=token,
                                 on_cancel=state.ask_cancel, key=f"level{level}"):
            if outcome is None:
                continue
            if outcome.error is not None:
                raise outcome.error if isinstance(outcome.error, UserError) else UserError(
                    f"pyramid level {level} could not be written ({why(outcome.error)})", "run again with --resume")
            finished += 1
            yield clock.tick(finished, f"pyramid level {level}: {finished}/{len(regions)}")


def _merged_table(plan: BlockPlan, state: RunState, class_map: bool) -> dict[str, np.ndarray]:
    """Every block's measurements in one table, with the final ids (and a frame/plane column per loop axis)."""
    if class_map:
        pixels: dict[int, int] = {}
        for b in plan.blocks:
            data = state.load_block(b, ("class_ids", "class_pixels"))
            for c, n in zip(data.get("class_ids", []), data.get("class_pixels", [])):
                pixels[int(c)] = pixels.get(int(c), 0) + int(n)
        ids = sorted(pixels)
        return {"class": np.array(ids, np.int64), "pixels": np.array([pixels[i] for i in ids], np.int64)}
    counts = []
    tables = []
    for b in plan.blocks:
        data = state.load_block(b)
        counts.append(int(data["count"]))
        tables.append((b, {k[len(TABLE_PREFIX):]: v for k, v in data.items() if k.startswith(TABLE_PREFIX)}))
    offsets, _ = offsets_of(counts)
    out = []
    names = {"T": "frame", "Z": "plane"}
    for b, table in tables:
        if not table:
            continue
        n = len(table["label"])
        loop = {names.get(a, a.lower()): np.full(n, i) for a, i in zip(plan.out_axes, b.loop)}
        out.append({**loop, **table, "label": table["label"].astype(np.int64) + offsets[b.number]})
    merged = concat_tables(out)
    order = np.argsort(merged["label"], kind="stable")
    return {k: np.asarray(v)[order] for k, v in merged.items()}


def segment_blockwise(image: LazyImage, model: str | Path | Segmenter, **kwargs: Any) -> BlockwiseResult:
    """Headless: segment a lazy image blockwise (keyword arguments as :class:`BlockwiseSegmentJob`)."""
    return run_to_end(blockwise_segment_job(BlockwiseSegmentJob(image=image, model=model, **kwargs)))
