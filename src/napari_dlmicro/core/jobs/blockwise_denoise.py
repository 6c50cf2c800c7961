"""Denoising an image too big for memory (N2V, CARE), block by block on dask.distributed, into an NGFF image.

Each block is read with the network's receptive radius of context around it
(on the whole image's pooling grid), normalised with the whole image's range,
restored as one tile (or in ``tile``-sized tiles when asked) and its core
written straight into level 0 of the output (float32, the input's units), so
the result is the whole image's, seams and all; lower levels follow as block
means. Channels are restored one at a time (the model's ``independent``
channel mode), time points and, for a 2D model, planes too. The output is
marked complete only when every block and level is there.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_dlmicro.core.blockwise.denoise_tasks import DenoiseContext, denoise_block, denoise_halo
from napari_dlmicro.core.blockwise.passes import block_pass
from napari_dlmicro.core.blockwise.plan import Block, plan_blocks
from napari_dlmicro.core.blockwise.reading import BlockReader, frame_ranges
from napari_dlmicro.core.blockwise.state import RUN_FOLDER, RunState
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.ngff_write import OutputSpec, create_output, finish_output, pyramid_shapes
from napari_dlmicro.core.jobs.blockwise_segment import DEFAULT_BLOCK, pyramid_pass
from napari_dlmicro.core.models.restoration.network import RestorationModel, load_restoration
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice, Engine, engine, processes, scatter
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, Notice, OutputCreated, Preview, PreviewKind, run_to_end


@dataclass(frozen=True)
class BlockwiseDenoiseJob:
    """What to denoise blockwise, into which store (``<stem>_denoised.ome.zarr``), on which cluster.

    ``tile`` None restores each block (with its halo) in one go: the block
    size bounds the memory. ``tta``: the eight test-time views, the default as in memory.
    """

    image: LazyImage
    model: str | Path | RestorationModel
    output: Path
    block: int = DEFAULT_BLOCK
    resume: bool = False
    cluster: ClusterChoice = field(default_factory=ClusterChoice)
    tile: int | None = None
    tta: bool = True
    device: str = "auto"
    previews: bool = True


@dataclass
class BlockwiseDenoised:
    """A finished blockwise denoising."""

    image: Path
    output: OutputSpec
    blocks: int
    seconds: float


def blockwise_denoise_job(job: BlockwiseDenoiseJob, token: CancelToken = NEVER) -> Job:
    """The blockwise denoising job generator; returns a :class:`BlockwiseDenoised`."""
    start = time.perf_counter()
    image = job.image
    model = job.model if isinstance(job.model, RestorationModel) else load_restoration(
        job.model, resolve_device(job.device))
    if any(f > 1 for f in model.factors):
        raise UserError(f"this CARE model upsamples {max(model.factors)}x, which blockwise denoising does not do yet",
                        "apply it to TIFF images (or crops) that fit in memory")
    if model.n_channels != 1:
        raise UserError(f"this {model.kind} model restores {model.n_channels} channels together, which blockwise "
                        "denoising does not do yet", "use a model trained on one channel at a time")
    if model.ndim == 3 and "Z" not in image.axes:
        raise UserError("the model is 3D (ZYX) but the image has no Z axis", "use a 2D model")
    out_axes = "".join(a for a in "TCZYX" if a in image.axes)
    spatial = "ZYX" if model.ndim == 3 else "YX"
    n_loop = len(out_axes) - len(spatial)
    shape = tuple(image.shape[image.axes.index(a)] for a in out_axes)
    in_chunks = dict(zip(image.axes, image.chunks))
    chunks = tuple(1 if i < n_loop else min(n, in_chunks.get(a, 256)) for i, (a, n) in enumerate(zip(out_axes, shape)))
    halo, div = denoise_halo(model), model.div_by
    plan = plan_blocks(out_axes, shape, n_loop, job.block, halo, chunks, div)
    fmt = 3 if (image.ngff_version or "0.4") >= "0.5" else 2
    like = [tuple(lv.shape[image.axes.index(a)] for a in out_axes) for lv in image.levels]
    spec = create_output(OutputSpec(
        store=str(job.output), group="", axes=out_axes, level_shapes=pyramid_shapes(shape, out_axes, like),
        chunks=list(chunks), dtype="float32", kind="image", name=f"{image.name} denoised", zarr_format=fmt,
        scale={a: v for a, v in image.scale.items() if a in out_axes},
        translation={a: v for a, v in image.translation.items() if a in out_axes}, unit=image.unit,
        channel_names=list(image.channel_names)), job.resume)
    yield OutputCreated(spec.path)
    state = RunState(spec.path / RUN_FOLDER)
    norm = _ranges(image, model)
    name = str(job.model) if not isinstance(job.model, RestorationModel) else model.config.get("name", model.kind)
    state.create({"input": str(image.path or image.name), "shape": list(image.shape), "model": name,
                  "plan": plan.to_json(), "norm": {str(k): v for k, v in norm.items()}}, job.resume)
    norm = {int(k): tuple(v) for k, v in state.manifest()["norm"].items()}
    reader = BlockReader(image.source, image.axes, out_axes, n_loop, None)
    done = state.done_blocks()
    todo = [b for b in plan.blocks if b.key not in done]
    with engine(job.cluster, token) as eng:
        if eng.dashboard:
            yield Notice(f"dask dashboard: {eng.dashboard}")
        if done:
            yield Notice(f"resuming: {len(done)} of {len(plan.blocks)} block(s) were already denoised")
        ctx = DenoiseContext(secrets.token_hex(6), _shipped(job.model, model, eng), job.device, reader, norm, plan,
                             spec.to_json(), str(state.folder), job.tile, job.tta, eng.torch_threads)
        shared = scatter(eng, ctx, token)
        level0 = spec.array(0, mode="r") if job.previews else None

        def denoised(block: Block, _seconds: float) -> Preview | None:
            return None if level0 is None else Preview(np.asarray(level0[block.out_index]), block.out_index,
                                                       PreviewKind.IMAGE)

        yield from block_pass(eng, denoise_block, todo, shared, plan, state, spec, token, "denoising blocks",
                              "denoised", denoised)
        yield from pyramid_pass(eng, spec, token, state)
    path = finish_output(spec, {"model": name})
    state.remove()
    return BlockwiseDenoised(path, spec, len(plan.blocks), time.perf_counter() - start)


def _shipped(given: str | Path | RestorationModel, model: RestorationModel, eng: Engine) -> RestorationModel | str:
    """What workers get: the loaded model, unless it is named and the workers are local processes (they load it)."""
    if isinstance(given, RestorationModel) or not eng.own or not processes(eng):
        return model
    path = Path(str(given)).expanduser()
    return str(path.resolve()) if path.exists() else str(given)


def _ranges(image: LazyImage, model: RestorationModel) -> dict[int, tuple[list[float], list[float]]]:
    """Per T index (0 without T), per channel ``lo, hi``: what the in-memory denoiser uses for each sample.

    ``per_image`` models (CARE) take each frame's and channel's percentiles
    (from a low pyramid level on huge images); the others their fixed range.
    """
    norm = model.config["normalization"]
    if norm.get("input_mode") == "per_image":
        low, high = norm["percentiles"]
        return frame_ranges(image, float(low), float(high), None)
    n_t = image.shape[image.axes.index("T")] if "T" in image.axes else 1
    n_c = image.shape[image.axes.index("C")] if "C" in image.axes else 1
    lo, hi = np.asarray(norm["input"]["low"]).reshape(-1), np.asarray(norm["input"]["high"]).reshape(-1)
    return {t: ([float(lo[0])] * n_c, [float(hi[0])] * n_c) for t in range(n_t)}


def denoise_blockwise(image: LazyImage, model: str | Path | RestorationModel, output: str | Path,
                      **kwargs: Any) -> BlockwiseDenoised:
    """Headless: denoise a lazy image blockwise (keyword arguments as :class:`BlockwiseDenoiseJob`)."""
    return run_to_end(blockwise_denoise_job(BlockwiseDenoiseJob(image=image, model=model, output=Path(output),
                                                                **kwargs)))
