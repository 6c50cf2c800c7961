"""What a dask worker does for blockwise denoising: restore a block with its halo, write its core."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_dlmicro.core.blockwise.plan import Block, BlockPlan
from napari_dlmicro.core.blockwise.reading import BlockReader
from napari_dlmicro.core.blockwise.state import RunState, write_guard
from napari_dlmicro.core.data.tiling import pad_to_multiple, plan_tiles
from napari_dlmicro.core.io.ngff_write import OutputSpec
from napari_dlmicro.core.models.restoration.network import RestorationModel, load_restoration, predict_tile
from napari_dlmicro.core.runtime.cluster import worker_model
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.threads import set_cpu_threads

HALO = 32  # context around each block and tile, as the in-memory denoiser reads


@dataclass
class DenoiseContext:
    """Everything a worker needs for every block of one denoising run."""

    run_id: str
    model: RestorationModel | str
    device: str
    reader: BlockReader
    norm: dict[int, tuple[list[float], list[float]]]  # per channel index: lo, hi (the input's units)
    plan: BlockPlan
    output: dict[str, Any]
    run_folder: str
    tile: int | None
    tta: bool
    torch_threads: int = 1


def restoration_model(ctx: DenoiseContext) -> tuple[RestorationModel, Any]:
    """The worker's loaded model for this run, and its lock."""
    def load() -> RestorationModel:
        set_cpu_threads(ctx.torch_threads)
        if isinstance(ctx.model, RestorationModel):
            return ctx.model
        return load_restoration(ctx.model, resolve_device(ctx.device))
    return worker_model((ctx.run_id, "denoise"), load)


def denoise_block(block: Block, ctx: DenoiseContext) -> float:
    """Restore one block (its core written to level 0); returns the seconds it took (0 if it was done)."""
    state = RunState(ctx.run_folder)
    if state.block_done(block):
        return 0.0
    start = time.perf_counter()
    model, lock = restoration_model(ctx)
    x = ctx.reader.read(block.loop, block.read)  # (spatial..., 1)
    c = block.loop[ctx.plan.out_axes.index("C")] if "C" in ctx.plan.out_axes[: ctx.plan.n_loop] else 0
    lo, hi = (np.asarray(v, np.float32)[:1] for v in ctx.norm[c])
    bad = ~np.isfinite(x)
    x = np.where(bad, 0, x)
    sample = np.moveaxis(((x - lo) / (hi - lo + 1e-20)).astype(np.float32), -1, 0)
    out_lo, out_hi = model.output_range(lo, hi)
    div = model.div_by
    margin = tuple(min(HALO, max(d, 16)) for d in div)
    out = np.empty(sample.shape, np.float32)
    with lock, torch.inference_mode():
        for t in plan_tiles(sample.shape[1:], ctx.tile, margin, div):
            state.token().check()
            src = np.moveaxis(sample[(slice(None),) + t.src], 0, -1)
            y = predict_tile(model, np.moveaxis(pad_to_multiple(src, div), -1, 0), tta=ctx.tta)
            out[(slice(None),) + t.core] = y[(slice(None),) + t.core_in_src][: out.shape[0]]
    out = out[0] * (out_hi[0] - out_lo[0]) + out_lo[0]
    out[bad[..., 0]] = np.nan
    core = out[block.core_in_read]
    spec = OutputSpec.from_json(ctx.output)
    with write_guard(spec.path):
        spec.array(0)[block.out_index] = core.reshape((1,) * len(block.loop) + core.shape)
    state.save_block(block, {"count": np.array(0)})
    return time.perf_counter() - start
