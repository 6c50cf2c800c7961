"""What the segmentation job checks and prepares before a model sees an image."""
from __future__ import annotations

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.base import Segmenter

MIN_SIZE = 8  # pixels along Y or X below which nothing can be segmented


def as_numbers(data: np.ndarray) -> np.ndarray:
    """The pixels as numbers a model can take: booleans become 0/1, other kinds are refused."""
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.size == 0:
        raise UserError("the image is empty (it has no pixels)", "open or select an image that has data")
    if np.iscomplexobj(data):
        raise UserError("the image has complex pixels", "take its magnitude first")
    if not np.issubdtype(data.dtype, np.number):
        raise UserError(f"pixels of type {data.dtype} cannot be segmented", "use a numeric image")
    return data


def check_pixels(data: np.ndarray) -> list[str]:
    """Refuse images with nothing to segment; notes about pixels treated as background."""
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


def pick_channels(data: np.ndarray, axes: str, given_axes: str, model: Segmenter, channel: int | None) -> np.ndarray:
    """Canonical data (..., C) with the channels the model takes.

    ``given_axes`` are the axes as the user gave them (or as the file has
    them), to say how to re-read channels that are really planes.
    """
    info = model.info
    if "C" not in axes:
        data = data[..., None]
    n = data.shape[-1]
    if channel is not None:
        if not 0 <= channel < n:
            raise UserError(f"channel {channel} does not exist: the image has {n} channel(s)", f"pick 0 to {n - 1}")
        data = data[..., channel: channel + 1]
        n = 1
    if info.kind == "cellpose":
        if n > 3:
            raise UserError(f"the image has {n} channels; Cellpose-SAM takes up to 3",
                            "pick one channel, or make a 3-channel image of the stains you want")
        return data
    if n == info.n_channels:
        return data
    if info.n_channels == 1:
        what = {3: "3 channels (an RGB image?)", 4: "4 channels (an RGBA image?)"}.get(n, f"{n} channels")
        planes = _as_planes(given_axes)
        raise UserError(f"{info.name} takes one channel but the input has {what}",
                        "pick a channel (dock: Channel; CLI: --channel N)"
                        + (f"; if they are the planes of a stack, set the axes to {planes} (CLI: --axes {planes})"
                           if planes else "") + "; for H&E use stardist:2D_versatile_he")
    raise UserError(f"{info.name} takes {info.n_channels} channels but the input has {n}",
                    f"give a {info.n_channels}-channel image (RGB for H&E models)")


def _as_planes(axes: str) -> str:
    """``axes`` with its channel axis read as Z (or T when there is a Z), or '' without a channel axis."""
    axes = axes.upper().replace("S", "C")
    if "C" not in axes:
        return ""
    return axes.replace("C", "Z" if "Z" not in axes else ("T" if "T" not in axes else "C"))


def check_model_fits(data_shape: tuple[int, ...], axes_nc: str, model: Segmenter) -> None:
    """A 3D model needs a Z axis; every model needs a plane of at least :data:`MIN_SIZE` pixels."""
    if "Z" not in axes_nc and model.info.spatial_ndim == 3 and not model.info.also_2d:
        raise UserError(f"{model.info.name} is a 3D model but the image has no Z axis",
                        "use a 2D model, or set the axes so that one of them is Z")
    h, w = data_shape[axes_nc.index("Y")], data_shape[axes_nc.index("X")]
    if min(h, w) < MIN_SIZE:
        raise UserError(f"the image is only {h}x{w} pixels", f"segmentation needs at least {MIN_SIZE}x{MIN_SIZE}")


def normalise_block(block: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``block`` mapped so ``lo``/``hi`` become 0/1, as float32; computed in float64 where float32 would overflow."""
    work = np.float64 if block.dtype == np.float64 or not np.all(np.isfinite(np.float32(hi - lo))) else np.float32
    out = (block.astype(work) - lo.astype(work)) / (hi.astype(work) - lo.astype(work) + 1e-20)
    return np.nan_to_num(out.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
