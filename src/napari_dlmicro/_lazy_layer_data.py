"""napari layer data of a :class:`~napari_dlmicro.core.io.lazy.LazyImage`, for the OME-Zarr and the TIFF readers.

Each layer carries level 0's pixel size and offset, and the image's axes and
source in ``metadata``: the docks open the source again (block by block,
in any process) rather than reading the layer's arrays. A label image small
enough to hold opens in memory instead: napari paints only on an array it can
write, never on a pyramid or a read-only store.
"""
from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from napari_dlmicro.core.io.lazy import LazyImage

LayerData = tuple[Any, dict[str, Any], str]
COLORMAPS = ("magenta", "green", "cyan", "yellow", "red", "blue")
PAINTABLE_PIXELS = 4096 * 4096  # a label image up to this size is read into memory, where it can be painted on


def paintable(level0) -> np.ndarray | None:
    """``level0`` of a label image read into memory when it has at most :data:`PAINTABLE_PIXELS`, else None."""
    if int(np.prod(level0.shape, dtype=np.int64)) > PAINTABLE_PIXELS:
        return None
    return np.array(level0)  # a writable copy: zarr and dask arrays read from a store are not


def spatial_kwargs(image: LazyImage) -> dict[str, Any]:
    """Scale, offset, axis labels, units and the source's description of ``image``'s layers."""
    axes = image.axes.replace("C", "")
    kwargs: dict[str, Any] = {
        "scale": tuple(image.scale.get(a, 1.0) for a in axes),
        "translate": tuple(image.translation.get(a, 0.0) for a in axes),
        "axis_labels": tuple(a.lower() for a in axes),
        "metadata": {"axes": axes, "source_axes": image.axes, "unit": image.unit,
                     "source": str(image.path or ""), "where": image.where},
    }
    if image.unit == "µm":
        kwargs["units"] = tuple("micrometer" if a in image.scale else "pixel" for a in axes)
    return kwargs


def image_layer_data(image: LazyImage, levels: list[da.Array] | None = None, rgb: bool = False) -> LayerData:
    """One image layer (one per channel, through ``channel_axis``) over ``levels`` (default: the image's own).

    ``rgb``: one RGB(A) layer, the channels last, as napari draws colour images.
    """
    levels = levels or image.levels
    data = levels if len(levels) > 1 else levels[0]
    kwargs = {**spatial_kwargs(image), "multiscale": len(levels) > 1}
    if rgb:
        kwargs.update(rgb=True, name=image.name)
    elif "C" in image.axes and image.shape[image.axes.index("C")] > 1:
        n = image.shape[image.axes.index("C")]
        names = image.channel_names or [f"ch{i}" for i in range(n)]
        kwargs.update(channel_axis=image.axes.index("C"), name=[f"{image.name} [{c}]" for c in names],
                      colormap=[COLORMAPS[i % len(COLORMAPS)] for i in range(n)], blending="additive")
    else:
        if "C" in image.axes:
            c = image.axes.index("C")
            levels = [lv[tuple(0 if i == c else slice(None) for i in range(lv.ndim))] for lv in levels]
            data = levels if len(levels) > 1 else levels[0]
        kwargs["name"] = image.name
    return data, kwargs, "image"


def labels_layer_data(image: LazyImage, name: str, levels: list[da.Array] | None = None) -> LayerData:
    """One labels layer named ``name`` over ``levels`` (default: the image's own).

    In memory, and so paintable, when level 0 is small enough (:func:`paintable`); else lazy, as a pyramid.
    """
    levels = levels or image.levels
    held = paintable(levels[0])
    if held is not None:
        return held, {**spatial_kwargs(image), "multiscale": False, "name": name}, "labels"
    data = levels if len(levels) > 1 else levels[0]
    return data, {**spatial_kwargs(image), "multiscale": len(levels) > 1, "name": name}, "labels"
