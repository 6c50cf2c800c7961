"""Turning results into napari layers: named after input and model, updated in place."""
from __future__ import annotations

import time

import numpy as np
from napari.layers import Image, Labels


def output_name(image_name: str, model_name: str) -> str:
    """``nuclei [stardist]``-style name for an output layer."""
    short = model_name.split(":")[-1] if model_name else "model"
    return f"{image_name} [{short}]"


def spatial_axes_of(layer: Image, channel_axis: int | None = None) -> int:
    """Number of non-channel dimensions of an image layer (RGB counts as its own)."""
    return layer.data.ndim - (1 if layer.rgb else 0) - (1 if channel_axis is not None else 0)


def ensure_labels_layer(viewer, name: str, shape: tuple[int, ...], like: Image, dtype=np.uint32) -> Labels:
    """The Labels layer called ``name``, (re)made with ``shape`` and ``like``'s geometry."""
    ndim = len(shape)
    scale = tuple(like.scale)[-ndim:]
    translate = tuple(like.translate)[-ndim:]
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, Labels) and layer.data.shape == tuple(shape):
            if layer.data.dtype != dtype and np.dtype(dtype).itemsize > layer.data.dtype.itemsize:
                layer.data = layer.data.astype(dtype)
            layer.scale, layer.translate = scale, translate
            return layer
        viewer.layers.remove(layer)
    return viewer.add_labels(np.zeros(shape, dtype), name=name, scale=scale, translate=translate)


class ThrottledRefresh:
    """Refresh a layer at most every ``interval`` seconds, so streaming tiles never stall the GUI."""

    def __init__(self, interval: float = 0.3):
        self.interval = interval
        self._last = 0.0

    def __call__(self, layer, force: bool = False) -> None:
        now = time.perf_counter()
        if force or now - self._last >= self.interval:
            self._last = now
            layer.refresh()
