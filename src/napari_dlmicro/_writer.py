"""npe2 writer: a labels layer as a TIFF that Fiji and this plugin read back to scale."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_dlmicro.core.io.axes import default_axes
from napari_dlmicro.core.io.files import TIFF_SUFFIXES
from napari_dlmicro.core.io.tiff_metadata import um_per
from napari_dlmicro.core.io.tiff_write import write_labels


def write_labels_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write a labels layer to ``path`` (``.tif`` added if missing); returns the paths written.

    The layer's ``scale`` becomes the pixel size, in micrometres when the
    layer's units are lengths; its ``metadata["axes"]`` (as set by this
    plugin's reader) names the axes when it fits the data.
    """
    if not path.lower().endswith(TIFF_SUFFIXES):
        path += ".tif"
    axes = _axes(meta, getattr(data, "ndim", 0))
    scale = _scale_um(meta.get("scale"), meta.get("units"))
    write_labels(path, data, scale=scale, axes=axes)
    return [str(Path(path))]


def _axes(meta: dict[str, Any], ndim: int) -> str | None:
    axes = (meta.get("metadata") or {}).get("axes")
    if isinstance(axes, str) and len(axes) == ndim and "C" not in axes and "S" not in axes:
        return axes
    return default_axes(ndim) if 2 <= ndim <= 4 else None


def _scale_um(scale: Sequence[float] | None, units: Sequence[Any] | None) -> list[float] | None:
    """The scale in micrometres, or None when the layer has no calibration.

    Axes in length units are converted; axes in ``pixel`` units keep their
    numbers, read as micrometres (people often type µm sizes into the scale
    without setting units). A scale of all ones in pixel units is no
    calibration at all.
    """
    if scale is None:
        return None
    factors = [um_per(str(u)) for u in units] if units else [None] * len(scale)
    if all(f is None for f in factors) and all(float(s) == 1.0 for s in scale):
        return None
    return [float(s) * (f if f is not None else 1.0) for s, f in zip(scale, factors)]
