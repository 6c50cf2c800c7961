"""What a dask worker does for blockwise segmentation: segment a block, compose a core, build a level.

Every task is idempotent: it looks in the run folder first and returns at
once for work already recorded, and it writes only whole chunks that belong
to its own block, so a task redone after a worker died (or on ``--resume``)
writes exactly what the first attempt would have.
"""
from __future__ import annotations

import hashlib
import json
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import zarr

from napari_dlmicro.core.blockwise.plan import Block, BlockPlan
from napari_dlmicro.core.blockwise.reading import BlockReader
from napari_dlmicro.core.blockwise.seams import Spill, compose_core, local_of, own_objects, raw_ids
from napari_dlmicro.core.blockwise.state import RunState, write_guard
from napari_dlmicro.core.io.ngff_write import OutputSpec, downsample
from napari_dlmicro.core.jobs.segment_input import normalise_block
from napari_dlmicro.core.labels.measure import measure_labels
from napari_dlmicro.core.models.base import ObjectLabels, Segmenter
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.engines.choice import TORCH
from napari_dlmicro.core.runtime.cluster import worker_model
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import run_to_end
from napari_dlmicro.core.runtime.threads import set_cpu_threads

TABLE_PREFIX = "table_"


@dataclass
class SegmentContext:
    """Everything a worker needs for every block of one run (sent to each worker once)."""

    run_id: str
    model: Segmenter | str  # the model itself, or a name/folder each worker loads once
    device: str
    settings: dict[str, Any]
    tile: int | None
    reader: BlockReader
    norm: dict[int, tuple[list[float], list[float]]]  # per T index (0 without T): per-channel lo, hi
    plan: BlockPlan
    output: dict[str, Any]  # OutputSpec as JSON
    run_folder: str
    spacing: tuple[float, ...] | None  # pixel size per spatial axis, for the measurements
    unit: str = "um"
    class_map: bool = False
    measure: bool = True
    intensity: bool = True  # measure intensities (single-channel inputs)
    torch_threads: int = 1
    max_halo: tuple[int, ...] = field(default_factory=tuple)
    trust_code: bool = False  # a named bioimage.io package may run its own code (the user confirmed it)
    engine: str = TORCH  # where the worker runs the network on the CPU (its session is built there, once)


@dataclass
class BlockReport:
    """What a finished block says back to the job (small: pixels stay in the store)."""

    number: int
    objects: int
    cut: int = 0
    halo: tuple[int, ...] = ()
    seconds: float = 0.0
    skipped: bool = False
    peak_rss: int = 0  # the worker process's peak resident memory so far, bytes


def model_of(ctx: SegmentContext) -> tuple[Segmenter, Any]:
    """The worker's loaded model for this run, and the lock to hold while it runs.

    The model runs on the run's engine from its first block on: ONNX Runtime and
    OpenVINO sessions are opened in this worker on first use and kept for the
    next blocks (:mod:`...models.engines.backends`).
    """
    def load() -> Segmenter:
        set_cpu_threads(ctx.torch_threads)
        if isinstance(ctx.model, Segmenter):
            model = ctx.model
        else:
            model = get_segmenter(ctx.model, resolve_device(ctx.device), trust_code=ctx.trust_code)
        return model.use_engine(ctx.engine)
    return worker_model((ctx.run_id, "segment"), load)


def segment_block(block: Block, ctx: SegmentContext) -> BlockReport:
    """Segment one block with its halo, keep the objects it owns, record them (see :mod:`.seams`)."""
    state = RunState(ctx.run_folder)
    if state.block_done(block):
        return BlockReport(block.number, int(state.load_block(block, ("count",))["count"]), skipped=True)
    start = time.perf_counter()
    model, lock = model_of(ctx)
    token = state.token()
    halo = ctx.plan.halo
    spatial_shape = ctx.plan.out_shape[ctx.plan.n_loop:]
    while True:
        read = ctx.plan.read_of(block.core, halo)
        view = Block(block.number, block.loop, block.grid, block.core, read)
        raw = ctx.reader.read(block.loop, read)
        lo, hi = ctx.norm[block.loop[0] if ctx.plan.out_axes.startswith("T") else 0]
        x = normalise_block(raw, np.asarray(lo, np.float32), np.asarray(hi, np.float32))
        with lock, torch.inference_mode():
            if ctx.class_map:
                found = ObjectLabels(np.asarray(run_to_end(model.segment(x, ctx.settings, token, ctx.tile))),
                                     np.zeros(0, int), np.zeros((0, len(read)), int), np.zeros(0, np.float32))
            else:
                found = run_to_end(model.segment_objects(x, ctx.settings, token, ctx.tile))
        if ctx.class_map:
            return _class_block(ctx, view, found.labels, raw, state, start)
        owned = own_objects(found, view, spatial_shape)
        if owned.cut and any(h < m for h, m in zip(halo, ctx.max_halo)):
            halo = tuple(min(m, 2 * h) for h, m in zip(halo, ctx.max_halo))  # an object was cut: see more
            continue
        break
    out = OutputSpec.from_json(ctx.output)
    with write_guard(out.path):
        raw_array = zarr.open_array(str(state.raw_path), mode="r+")
        raw_array[block.out_index] = raw_ids(owned.core, block.number).reshape(_out_shape(block))
    arrays: dict[str, np.ndarray] = {
        "count": np.array(owned.count), "scores": owned.scores, "seeds": owned.seeds,
        "spill_coords": owned.spill_coords, "spill_ids": owned.spill_ids, "cut": np.array(owned.cut),
    }
    if ctx.measure:
        intensity = raw[..., 0] if (ctx.intensity and raw.shape[-1] == 1) else None
        arrays.update(_measure(owned.local_view, intensity, read, ctx))
    state.save_block(block, arrays)
    return BlockReport(block.number, owned.count, owned.cut, halo, time.perf_counter() - start, peak_rss=_peak_rss())


def _peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _out_shape(block: Block) -> tuple[int, ...]:
    return (1,) * len(block.loop) + tuple(s.stop - s.start for s in block.core)


def _measure(local: np.ndarray, intensity: np.ndarray | None, read: tuple[slice, ...],
             ctx: SegmentContext) -> dict[str, np.ndarray]:
    table = measure_labels(local, intensity, ctx.spacing, ctx.unit)
    spacing = ctx.spacing or (1.0,) * len(read)
    names = "zyx"[-len(read):]
    for axis, r, s in zip(names, read, spacing):
        for column in list(table):
            if column.startswith(f"centroid_{axis}_"):
                table[column] = table[column] + r.start * s
    return {TABLE_PREFIX + k: v for k, v in table.items()}


def _class_block(ctx: SegmentContext, view: Block, classes: np.ndarray, raw: np.ndarray, state: RunState,
                 start: float) -> BlockReport:
    """A semantic model's block: its class map's core goes straight into the output (ids are classes)."""
    out = OutputSpec.from_json(ctx.output)
    core = np.asarray(classes)[view.core_in_read].astype(np.uint32)
    with write_guard(out.path):
        out.array(0)[view.out_index] = core.reshape(_out_shape(view))
    ids, counts = np.unique(core[core > 0], return_counts=True)
    state.save_block(view, {"count": np.array(0), "class_ids": ids, "class_pixels": counts})
    return BlockReport(view.number, 0, 0, ctx.plan.halo, time.perf_counter() - start)


def offsets_of(counts: list[int]) -> tuple[list[int], str]:
    """Id offsets per block (running sum in plan order) and their digest."""
    offsets = np.concatenate([[0], np.cumsum(counts[:-1])]).astype(np.int64).tolist() if counts else []
    digest = hashlib.blake2b(json.dumps(offsets).encode(), digest_size=12).hexdigest()
    return offsets, digest


def compose_block(block: Block, ctx: SegmentContext, offsets: list[int], digest: str) -> int:
    """Write one core's final ids: its own objects and its neighbours' spills; returns the conflicts met."""
    state = RunState(ctx.run_folder)
    if state.composed(block, digest):
        return 0
    out = OutputSpec.from_json(ctx.output)
    raw_array = zarr.open_array(str(state.raw_path), mode="r")
    local = local_of(np.asarray(raw_array[block.out_index])).reshape(tuple(s.stop - s.start for s in block.core))
    own = state.load_block(block, ("scores",))
    spills = []
    for nb in ctx.plan.neighbours(block):
        data = state.load_block(nb, ("spill_coords", "spill_ids", "scores"))
        spills.append(Spill(offsets[nb.number], data["spill_coords"], data["spill_ids"], data["scores"]))
    final, conflicts = compose_core(local, block.core, offsets[block.number], own["scores"], spills)
    with write_guard(out.path):
        out.array(0)[block.out_index] = final.astype(np.uint32).reshape(_out_shape(block))
    state.mark_composed(block, digest, conflicts)
    return conflicts


def build_level(region: tuple[slice, ...], output: dict[str, Any], level: int) -> None:
    """Pyramid level ``level`` over ``region`` (its own coordinates) from level ``level - 1``."""
    out = OutputSpec.from_json(output)
    above = out.array(level - 1, mode="r")
    shapes = out.level_shapes
    factors = tuple(max(1, round(a / b)) for a, b in zip(shapes[level - 1], shapes[level]))
    src = tuple(slice(s.start * f, min(n, s.stop * f)) for s, f, n in zip(region, factors, shapes[level - 1]))
    data = downsample(np.asarray(above[src]), factors, out.kind == "labels")
    target = tuple(slice(s.start, s.start + n) for s, n in zip(region, data.shape))
    with write_guard(out.path):
        out.array(level)[target] = data
