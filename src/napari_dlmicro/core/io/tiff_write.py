"""Writing TIFFs: labels and float images, ImageJ- or OME-flavoured, atomically.

Every writer writes to a hidden file in the target folder and renames it over
the target at the end, so a reader never sees half a file.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tifffile

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.io.axes import FILE_AXES as AXES
from napari_dlmicro.core.io.axes import default_axes
from napari_dlmicro.core.io.tiff_metadata import (
    SPATIAL,
    UM,
    layer_axes,
    um_per,
)

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)


def label_dtype(max_label: int) -> np.dtype:
    """``uint16`` when every label fits, else ``uint32``."""
    return np.dtype(np.uint16 if max_label <= np.iinfo(np.uint16).max else np.uint32)


def _as_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.uint16)
    if not np.issubdtype(labels.dtype, np.integer) and (
        not np.issubdtype(labels.dtype, np.floating) or not np.all(np.mod(labels, 1) == 0)
    ):
        raise UserError(
            f"labels must be whole numbers, got {labels.dtype} data",
            "pass a labels layer or an integer array (0 = background)",
        )
    if labels.size == 0:
        raise UserError("the labels array is empty", "pass labels with at least one pixel")
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise UserError(
            f"labels contain the negative value {low}", "use 0 for background and positive ids for objects"
        )
    if high > np.iinfo(np.uint32).max:
        raise UserError(f"the largest label {high} does not fit in 32 bits", "relabel the objects sequentially")
    return labels.astype(label_dtype(high), copy=False)


def _check_write_axes(axes: str | None, ndim: int) -> str:
    axes = default_axes(ndim) if axes is None else axes.upper()
    valid = len(axes) == ndim == len(set(axes)) and set(axes) <= set(AXES) and {"Y", "X"} <= set(axes)
    if not valid:
        raise UserError(
            f"axes {axes!r} do not describe a {ndim}D array",
            f"give {ndim} different letters from {AXES}, including Y and X",
        )
    return axes


def _sizes_um(scale, axes: str, unit: str | None) -> dict[str, float]:
    if scale is None:
        return {}
    if isinstance(scale, Mapping):
        sizes = {str(k).upper(): float(v) for k, v in scale.items()}
    else:
        values = [float(v) for v in scale]
        named = axes if len(values) == len(axes) else layer_axes(axes)
        if len(values) != len(named):
            raise UserError(
                f"{len(values)} scale values do not match the axes {axes!r}",
                "give one pixel size per axis (or per non-channel axis)",
            )
        sizes = dict(zip(named, values))
    factor = um_per(unit)
    if factor is None:
        return {}
    sizes = {a: v * factor for a, v in sizes.items() if a in SPATIAL and a in axes}
    for axis, value in sizes.items():
        if not np.isfinite(value) or value <= 0:
            raise UserError(f"the pixel size along {axis} is {value}", "pixel sizes must be positive numbers")
    return sizes


def write_labels(
    path: str | os.PathLike,
    labels,
    scale: Mapping[str, float] | Sequence[float] | None = None,
    axes: str | None = None,
    unit: str | None = UM,
) -> Path:
    """Write integer labels to a TIFF, atomically; returns the path written.

    Labels are stored as ``uint16`` when the largest fits, else ``uint32``.
    ``axes`` defaults to ``YX``/``ZYX``/``TZYX``/``TZCYX`` by dimension; ``scale`` is a
    mapping from axis letter to pixel size, or one size per (non-channel)
    axis, in ``unit``. Files named ``*.ome.tif(f)``, and ``uint32`` labels
    (which ImageJ cannot store), are written as OME-TIFF; others as
    ImageJ-TIFF, which Fiji opens with the right calibration.
    """
    data = _as_labels(labels)
    axes = _check_write_axes(axes, data.ndim)
    return _write(Path(path), data, axes, _sizes_um(scale, axes, unit), [])


def write_image(
    path: str | os.PathLike,
    image,
    scale: Mapping[str, float] | Sequence[float] | None = None,
    axes: str | None = None,
    unit: str | None = UM,
    channel_names: Sequence[str] = (),
) -> Path:
    """Write an image as float32 TIFF, atomically; returns the path written.

    ``axes``, ``scale`` and ``unit`` work as in :func:`write_labels`.
    ``*.ome.tif(f)`` names give OME-TIFF (with the channel names), others
    ImageJ-TIFF.
    """
    data = np.asarray(image)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool) or np.iscomplexobj(data):
        raise UserError(f"cannot save {data.dtype} data as an image", "pass a real-valued numeric array")
    axes = _check_write_axes(axes, data.ndim)
    sizes = _sizes_um(scale, axes, unit)
    return _write(Path(path), data.astype(np.float32, copy=False), axes, sizes, list(channel_names))


def is_ome_name(path: str | os.PathLike) -> bool:
    """True for ``*.ome.tif`` and ``*.ome.tiff``."""
    return Path(path).name.lower().endswith((".ome.tif", ".ome.tiff"))


def _write(path: Path, data: np.ndarray, axes: str, sizes: dict[str, float], channel_names: list[str]) -> Path:
    order = [axes.index(a) for a in "TZCYXS" if a in axes]
    data = np.ascontiguousarray(np.transpose(data, order))
    axes = "".join(axes[i] for i in order)
    as_ome = is_ome_name(path) or data.dtype.type not in _IMAGEJ_DTYPES
    kwargs = _ome_kwargs(axes, sizes, channel_names) if as_ome else _imagej_kwargs(axes, sizes)
    if "S" in axes:
        kwargs["photometric"] = "rgb"
    elif data.ndim >= 2:
        kwargs["photometric"] = "minisblack"
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)
    return path


def _resolution(sizes: dict[str, float], per_unit_um: float) -> dict:
    if "X" not in sizes and "Y" not in sizes:
        return {}
    x = sizes.get("X", sizes.get("Y"))
    y = sizes.get("Y", x)
    return {"resolution": (per_unit_um / x, per_unit_um / y)}


def _imagej_kwargs(axes: str, sizes: dict[str, float]) -> dict:
    metadata: dict = {"axes": axes}
    if sizes:
        metadata["unit"] = "micron"
    if "Z" in sizes:
        metadata["spacing"] = sizes["Z"]
    return {"imagej": True, "metadata": metadata, **_resolution(sizes, 1.0)}


def _ome_kwargs(axes: str, sizes: dict[str, float], channel_names: list[str]) -> dict:
    metadata: dict = {"axes": axes}
    for axis, value in sizes.items():
        metadata[f"PhysicalSize{axis}"] = value
        metadata[f"PhysicalSize{axis}Unit"] = UM
    if channel_names:
        metadata["Channel"] = {"Name": channel_names}
    kwargs = {"ome": True, "metadata": metadata, **_resolution(sizes, 1e4)}
    if "resolution" in kwargs:
        kwargs["resolutionunit"] = "CENTIMETER"
    return kwargs
