"""npe2 reader: TIFF, OME-TIFF and ImageJ-TIFF files as napari layers.

A TIFF too big to read whole (:func:`~napari_dlmicro.core.io.lazy.should_open_lazily`)
opens lazily instead, read tile by tile as napari shows it.

Each channel becomes its own image layer, ``<name> [<channel>]``; RGB(A)
files stay one RGB layer; integer files named ``*_labels.tif`` or
``*_masks.tif`` open as labels. Layers carry the file's pixel size as
``scale`` (micrometres where known) and its axes in ``metadata``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from napari_dlmicro._lazy_layer_data import image_layer_data, labels_layer_data
from napari_dlmicro._render_hint import hint_async_rendering
from napari_dlmicro.core.io.files import TIFF_SUFFIXES
from napari_dlmicro.core.io.lazy import display_levels, looks_rgb, open_tiff_lazily, should_open_lazily
from napari_dlmicro.core.io.tiff_metadata import UM, layer_axes
from napari_dlmicro.core.io.tiff_read import ImageData, layer_scale, read_image, split_channels

LayerData = tuple[Any, dict[str, Any], str]
PathLike = str | list[str]

LABELS_SUFFIXES = ("_labels", "_masks")
CHANNEL_COLORMAPS = ("magenta", "green", "cyan", "yellow", "red", "blue")


def get_reader(path: PathLike) -> Callable[[PathLike], list[LayerData]] | None:
    """Return :func:`read_tiffs` when every path is a TIFF file name, else None."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(isinstance(p, str) and p.lower().endswith(TIFF_SUFFIXES) for p in paths):
        return None
    return read_tiffs


def read_tiffs(path: PathLike) -> list[LayerData]:
    """Read one or more TIFF files into napari layer data tuples."""
    paths = [path] if isinstance(path, str) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        if should_open_lazily(p):
            layers.append(lazy_tiff_layer(p))
            continue
        image = read_image(p)
        layers.extend(image_layers(image, source=p))
    return layers


def lazy_tiff_layer(path: str) -> LayerData:
    """A TIFF too big to read whole, as a layer read tile by tile (its own pyramid, or strided views of it)."""
    image = open_tiff_lazily(path)
    levels = display_levels(image)
    hint_async_rendering(image.name, image.shape, image.axes)
    if _named_like_labels(image.name, image.dtype, image.axes):
        return labels_layer_data(image, image.name, levels)
    return image_layer_data(image, levels, rgb=looks_rgb(image))


def looks_like_labels(image: ImageData) -> bool:
    """True for integer, single-channel images named ``*_labels`` or ``*_masks``."""
    return _named_like_labels(image.name, image.data.dtype, image.axes) and not image.rgb


def _named_like_labels(name: str, dtype, axes: str) -> bool:
    return name.lower().endswith(LABELS_SUFFIXES) and np.issubdtype(dtype, np.integer) and "C" not in axes


def image_layers(image: ImageData, source: str = "") -> list[LayerData]:
    """The napari layer data tuples for an image read by :func:`read_image`."""
    common = _common_kwargs(image, source)
    if looks_like_labels(image):
        return [(image.data, {**common, "name": image.name}, "labels")]
    if "C" not in image.axes:
        return [(image.data, {**common, "name": image.name, "rgb": image.rgb}, "image")]
    channels = split_channels(image.data, image.axes, image.channel_names)
    layers = []
    for i, (channel, data) in enumerate(channels):
        kwargs = {
            **common,
            "name": f"{image.name} [{channel}]",
            "rgb": image.rgb,
            "metadata": {**common["metadata"], "channel": channel},
        }
        if not image.rgb:
            kwargs["colormap"] = CHANNEL_COLORMAPS[i % len(CHANNEL_COLORMAPS)] if len(channels) > 1 else "gray"
            kwargs["blending"] = "additive"
        layers.append((data, kwargs, "image"))
    return layers


def _common_kwargs(image: ImageData, source: str) -> dict[str, Any]:
    axes = layer_axes(image.axes)
    kwargs: dict[str, Any] = {
        "scale": layer_scale(image.axes, image.scale),
        "axis_labels": tuple(a.lower() for a in axes),
        "metadata": {
            "axes": axes,
            "source_axes": image.axes,
            "unit": image.unit,
            "source": str(Path(source)) if source else "",
        },
    }
    if image.unit == UM:
        kwargs["units"] = tuple("micrometer" if a in image.scale else "pixel" for a in axes)
    return kwargs
