"""What a blockwise job decides before any block runs: channels, output place and chunking, block plan."""
from __future__ import annotations

from pathlib import Path

from napari_dlmicro.core.blockwise.halo import ALIGN
from napari_dlmicro.core.blockwise.plan import BlockPlan, output_axes, plan_blocks
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.ngff_write import OutputSpec, pyramid_shapes
from napari_dlmicro.core.jobs.segment_input import MIN_SIZE
from napari_dlmicro.core.models.base import Segmenter


def choose_channels(image: LazyImage, model: Segmenter, channel: int | None) -> tuple[int, ...] | None:
    """The channels the model gets (None: all of them), or a clear error."""
    n = image.shape[image.axes.index("C")] if "C" in image.axes else 1
    if channel is not None:
        if not 0 <= channel < n:
            raise UserError(f"channel {channel} does not exist: the image has {n} channel(s)", f"pick 0 to {n - 1}")
        return (channel,)
    info = model.info
    if n == info.n_channels or "C" not in image.axes or (info.kind == "cellpose" and n <= 3):
        if "C" not in image.axes and info.n_channels != 1 and info.kind != "cellpose":
            raise UserError(f"{info.name} takes {info.n_channels} channels but the image has one",
                            f"give a {info.n_channels}-channel image")
        return None
    raise UserError(f"{info.name} takes {info.n_channels} channel(s) but the image has {n}",
                    "pick a channel (dock: Channel; CLI: --channel N)")


def check_fits(image: LazyImage, model: Segmenter) -> None:
    """A 3D model needs Z; every image needs a plane of :data:`MIN_SIZE` pixels."""
    if model.info.spatial_ndim == 3 and "Z" not in image.axes and not model.info.also_2d:
        raise UserError(f"{model.info.name} is a 3D model but the image has no Z axis", "use a 2D model")
    h, w = image.shape[image.axes.index("Y")], image.shape[image.axes.index("X")]
    if min(h, w) < MIN_SIZE:
        raise UserError(f"the image is only {h}x{w} pixels", f"segmentation needs at least {MIN_SIZE}x{MIN_SIZE}")


def labels_plan(image: LazyImage, model_ndim: int, block: int, halo: tuple[int, ...]) -> BlockPlan:
    """Blocks over the labels' axes (``TZYX`` order), aligned with the labels' chunks."""
    out_axes, n_loop = output_axes(image.axes, model_ndim)
    shape = tuple(image.shape[image.axes.index(a)] for a in out_axes)
    return plan_blocks(out_axes, shape, n_loop, block, halo, labels_chunks(image, out_axes, n_loop), ALIGN)


def labels_chunks(image: LazyImage, out_axes: str, n_loop: int) -> tuple[int, ...]:
    """The input's spatial chunking (one index per chunk on loop axes, so blocks never share a chunk)."""
    chunks = dict(zip(image.axes, image.chunks))
    return tuple(1 if i < n_loop else max(1, int(chunks.get(a, 256))) for i, a in enumerate(out_axes))


def default_output(image: LazyImage, outdir: str | Path, suffix: str) -> Path:
    """``OUTDIR/<stem><suffix>.ome.zarr``."""
    return Path(outdir) / f"{image.name}{suffix}.ome.zarr"


def labels_output(image: LazyImage, plan: BlockPlan, chunks: tuple[int, ...], store: Path | None,
                  into_input: bool, name: str) -> OutputSpec:
    """Where the labels go: a new store, or the input image's ``labels/<name>`` group."""
    fmt = 3 if (image.ngff_version or "0.4") >= "0.5" else 2
    like = None
    if into_input:
        if image.path is None or image.ngff_version is None:
            raise UserError("labels can go into the input only when it is an OME-Zarr image",
                            "drop --labels-into-input for TIFF inputs")
        like = [tuple(lv.shape[image.axes.index(a)] for a in plan.out_axes) for lv in image.levels]
    shapes = pyramid_shapes(plan.out_shape, plan.out_axes, like)
    chunks = tuple(min(c, n) for c, n in zip(chunks, plan.out_shape))
    common = dict(axes=plan.out_axes, level_shapes=shapes, chunks=list(chunks), dtype="uint32", kind="labels",
                  zarr_format=fmt, scale={a: v for a, v in image.scale.items() if a in plan.out_axes},
                  translation={a: v for a, v in image.translation.items() if a in plan.out_axes}, unit=image.unit)
    if into_input:
        return OutputSpec(store=str(image.path), group=f"labels/{name}", name=name, **common)
    if store is None:
        raise UserError("no output was given for the labels", "give an output folder (-o)")
    return OutputSpec(store=str(store), group="", name=f"{image.name} labels", **common)
