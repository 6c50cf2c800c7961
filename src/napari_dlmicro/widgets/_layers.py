"""Turning results into napari layers: named after input and model, updated in place.

A labels layer the user has painted on is never overwritten by the next result:
it is kept, renamed ``(edited)``, and the result gets a layer of its own.
"""
from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels

from napari_dlmicro.state.segmentation import labels_dtype
from napari_dlmicro.widgets._napari_compat import redraw_labels_region

PAINTED = "painted by the user"  # metadata key of a labels layer that holds the user's corrections


def watch_painting(layer: Labels) -> None:
    """Flag ``layer`` once the user paints on it (napari's paint event: a brush stroke, a fill, a polygon)."""
    layer.events.paint.connect(lambda _ev: layer.metadata.__setitem__(PAINTED, True))


def keep_painted(viewer, name: str) -> None:
    """Rename the layer called ``name`` to ``name (edited)`` when the user painted on it, so no result overwrites it."""
    if name in viewer.layers and viewer.layers[name].metadata.get(PAINTED):
        viewer.layers[name].name = f"{name} (edited)"


def show_labels(viewer, name: str, data, scale, translate, multiscale: bool = False) -> Labels:
    """The Labels layer ``name`` showing ``data`` (a pyramid's levels when ``multiscale``).

    A layer of that name and kind takes the new data: removing and adding one rebuilds its controls and its
    canvas node on the GUI thread (hundreds of ms), setting its data does not. One the user painted on is
    kept beside it (:func:`keep_painted`).
    """
    keep_painted(viewer, name)
    ndim = len(data[0].shape) if multiscale else data.ndim
    shown = next((lay for lay in viewer.layers if lay.name == name), None)
    if isinstance(shown, Labels) and shown.multiscale == multiscale and shown.ndim == ndim:
        shown.scale, shown.translate = scale, translate
        shown.data = data
        return shown
    if shown is not None:
        viewer.layers.remove(shown)
    shown = viewer.add_labels(data, name=name, multiscale=multiscale, scale=scale, translate=translate)
    watch_painting(shown)
    return shown


def output_name(image_name: str, model_name: str) -> str:
    """``nuclei [stardist]``-style name for an output layer."""
    short = model_name.split(":")[-1] if model_name else "model"
    return f"{image_name} [{short}]"


def image_next_to(viewer, layer, name: str, data: np.ndarray, limits, placed) -> Image:
    """The Image layer ``name`` showing ``data`` over ``layer`` (``placed``: its scale and translate), made just
    above it in the list or, when there, updated in place."""
    if name in viewer.layers:
        result = viewer.layers[name]
        result.data, result.contrast_limits = data, limits
        # each change of a transform re-slices every layer and relays the dims: only where it changes
        if not np.array_equal(result.scale, placed.scale):
            result.scale = placed.scale
        if not np.array_equal(result.translate, placed.translate):
            result.translate = placed.translate
        return result
    result = viewer.add_image(data, name=name, scale=placed.scale, translate=placed.translate, contrast_limits=limits)
    viewer.layers.move(viewer.layers.index(result), viewer.layers.index(layer) + 1)
    viewer.layers.selection.active = layer
    return result


def widen_labels(layer: Labels, largest: int) -> None:
    """Give ``layer`` a wider integer type when ``largest`` does not fit its own."""
    if largest > np.iinfo(layer.data.dtype).max:
        layer.data = layer.data.astype(labels_dtype(largest))


def ensure_labels_layer(viewer, name: str, shape: tuple[int, ...], like: Image, dtype=np.uint32) -> Labels:
    """The Labels layer called ``name``, (re)made with ``shape`` and ``like``'s geometry."""
    ndim = len(shape)
    scale = tuple(like.scale)[-ndim:]
    translate = tuple(like.translate)[-ndim:]
    keep_painted(viewer, name)
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, Labels) and layer.data.shape == tuple(shape):
            if layer.data.dtype != dtype and np.dtype(dtype).itemsize > layer.data.dtype.itemsize:
                layer.data = layer.data.astype(dtype)
            layer.scale, layer.translate = scale, translate
            return layer
        viewer.layers.remove(layer)
    layer = viewer.add_labels(np.zeros(shape, dtype), name=name, scale=scale, translate=translate)
    watch_painting(layer)
    return layer


def write_labels_region(layer: Labels, region: tuple[slice, ...], block: np.ndarray) -> bool:
    """Write ``block`` into ``layer.data[region]`` and redraw only that part (no undo history).

    Returns True when only the region was redrawn (see :mod:`._napari_compat`).
    """
    layer.data[region] = block
    return redraw_labels_region(layer, region)


def result_bands(placement: tuple[slice, ...], shape: tuple[int, ...], pixels: int = 1 << 19):
    """(destination, source) region pairs cutting a result into bands of about ``pixels``."""
    axis = next((i for i, n in enumerate(shape) if n > 1), 0)
    rest = int(np.prod(shape[axis + 1:], dtype=np.int64)) or 1
    step = max(1, pixels // rest)
    for start in range(0, shape[axis], step):
        stop = min(shape[axis], start + step)
        src = tuple(slice(start, stop) if i == axis else slice(0, n) for i, n in enumerate(shape))
        dst = tuple(slice(p.start + s.start, p.start + s.stop) for p, s in zip(placement, src))
        yield dst, src
