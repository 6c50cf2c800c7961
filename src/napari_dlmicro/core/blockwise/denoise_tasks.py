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
from napari_dlmicro.core.io.ngff_write import OutputSpec
from napari_dlmicro.core.models.restoration.network import RestorationModel, load_restoration
from napari_dlmicro.core.models.restoration.predict import predict_sample
from napari_dlmicro.core.runtime.cluster import worker_model
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import run_to_end
from napari_dlmicro.core.runtime.threads import set_cpu_threads


def denoise_halo(model: RestorationModel) -> tuple[int, ...]:
    """Context read around each block: the network's receptive radius, in whole multiples of its ``div_by``."""
    return tuple(-(-r // d) * d for r, d in zip(model.receptive_radius, model.div_by))


@dataclass
class DenoiseContext:
    """Everything a worker needs for every block of one denoising run."""

    run_id: str
    model: RestorationModel | str
    device: str
    reader: BlockReader
    norm: dict[int, tuple[list[float], list[float]]]  # per T index (0 without T): per-channel lo, hi
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
    """Restore one block (its core written to level 0); returns the seconds it took (0 if it was done).

    The block is read with its halo on the whole image's pooling grid and
    normalised with the whole image's range, so its core equals the
    whole-image result; NaN pixels take the block's median and stay NaN.
    """
    state = RunState(ctx.run_folder)
    if state.block_done(block):
        return 0.0
    start = time.perf_counter()
    model, lock = restoration_model(ctx)
    x = ctx.reader.read(block.loop, block.read)  # (spatial..., 1)
    loop = dict(zip(ctx.plan.out_axes, block.loop))
    lo, hi = ctx.norm[loop.get("T", 0)]
    c = loop.get("C", 0)
    sample = np.moveaxis(x, -1, 0).astype(np.float32, copy=False)
    with lock, torch.inference_mode():
        out = run_to_end(predict_sample(model, sample, ctx.tile, ctx.tta, state.token(),
                                        input_range=(lo[c:c + 1], hi[c:c + 1])))
    core = out[0][block.core_in_read]
    spec = OutputSpec.from_json(ctx.output)
    with write_guard(spec.path):
        spec.array(0)[block.out_index] = core.reshape((1,) * len(block.loop) + core.shape)
    state.save_block(block, {"count": np.array(0)})
    return time.perf_counter() - start
