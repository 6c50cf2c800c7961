"""Turning results into napari layers: named after input and model, updated in place."""
from __future__ import annotations

import warnings

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


def write_labels_region(layer: Labels, region: tuple[slice, ...], block: np.ndarray) -> None:
    """Write ``block`` into ``layer.data[region]`` and redraw only that part.

    A full ``refresh()`` re-colours and re-uploads the whole slice (hundreds of
    milliseconds for a large image); this updates the displayed texture for the
    region alone, as napari's own painting does, without adding to the undo
    history. Falls back to a full refresh where napari's internals differ.
    """
    layer.data[region] = block
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # napari flags plugins' use of its private slice API
        _redraw_region(layer, region)


def _redraw_region(layer: Labels, region: tuple[slice, ...]) -> None:
    try:
        displayed = list(layer._slice_input.displayed)
        not_displayed = layer._get_pt_not_disp()
        for dim, index in not_displayed.items():
            s = region[dim]
            if not (s.start or 0) <= index < s.stop:
                return  # not in the plane on screen: the data is enough
        view_region = tuple(region[d] for d in displayed)
        values = np.asarray(layer.data[tuple(
            slice(not_displayed[d], not_displayed[d] + 1) if d in not_displayed else region[d]
            for d in range(layer.data.ndim)
        )]).reshape([region[d].stop - region[d].start for d in displayed])
        if layer._slice.image.view.shape != layer._slice.image.raw.shape:
            raise AttributeError("view is downsampled")
        layer._slice.image.view[view_region] = layer.colormap._data_to_texture(values)
        layer._accumulate_updated_slice(tuple(region))
        layer._partial_labels_refresh()
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        layer.refresh()


def result_bands(placement: tuple[slice, ...], shape: tuple[int, ...], pixels: int = 1 << 19):
    """(destination, source) region pairs cutting a result into bands of about ``pixels``."""
    axis = next((i for i, n in enumerate(shape) if n > 1), 0)
    rest = int(np.prod(shape[axis + 1 :], dtype=np.int64)) or 1
    step = max(1, pixels // rest)
    for start in range(0, shape[axis], step):
        stop = min(shape[axis], start + step)
        src = tuple(slice(start, stop) if i == axis else slice(0, n) for i, n in enumerate(shape))
        dst = tuple(
            slice(p.start + s.start, p.start + s.stop) for p, s in zip(placement, src)
        )
        yield dst, src
