"""Layers too big to hold: telling them apart, reading them as lazy images, showing labels from a store.

A layer is big when napari holds it as a pyramid or a dask array (our
OME-Zarr reader opens stores that way). The dock segments such a layer
region by region or block by block, never through ``numpy.asarray``.
"""
from __future__ import annotations

import weakref
from pathlib import Path

import dask.array as da
import numpy as np
import zarr
from napari.layers import Labels

from napari_dlmicro._lazy_layer_data import paintable
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import TIFF_SUFFIXES
from napari_dlmicro.core.io.lazy import LazyImage, lazy_from_array, open_tiff_lazily
from napari_dlmicro.core.io.ome_zarr import is_zarr, open_image, open_images
from napari_dlmicro.widgets._layers import show_labels

HELD_PIXELS = 1 << 26  # a plain (numpy) layer up to this size is segmented in memory, as before


def is_big(layer) -> bool:
    """True for a layer held lazily: a pyramid, a dask array, or anything larger than :data:`HELD_PIXELS`."""
    data = layer.data
    if getattr(layer, "multiscale", False) or isinstance(data, da.Array):
        return True
    return int(np.prod(data.shape, dtype=np.int64)) > HELD_PIXELS and not isinstance(data, np.ndarray)


_HELD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layer -> (its data, level 0 in memory)
BIG_LAYER_HINT = ("segment or denoise it block by block (the Segmentation dock's Run, or napari-dlmicro "
                  "segment|denoise), or open a crop of it")


def check_holdable(name: str, shape: tuple[int, ...], use: str) -> None:
    """Refuse an array of ``shape`` over :data:`HELD_PIXELS` for a dock that holds it in memory to ``use`` it."""
    if int(np.prod(shape, dtype=np.int64)) > HELD_PIXELS:
        raise UserError(f"'{name}' ({' x '.join(str(n) for n in shape)} px) is too big to {use} in this dock "
                        f"({HELD_PIXELS >> 20} Mpx at most)", BIG_LAYER_HINT)


def held_data(layer, use: str) -> np.ndarray:
    """``layer``'s full-resolution pixels as one numpy array, for a dock that works in memory.

    A pyramid gives its level 0 (numpy's view of a napari pyramid is its coarsest level); a lazy layer
    over :data:`HELD_PIXELS` is refused with what to do instead, never read whole. What was read is kept
    while the layer lives and shows the same data.
    """
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    if isinstance(data, np.ndarray):
        return data
    check_holdable(layer.name, tuple(data.shape), use)
    read = _HELD.get(layer)
    if read is None or read[0] is not layer.data:  # read once per data: the Classification dock asks at each click
        read = _HELD[layer] = (layer.data, np.asarray(data))
    return read[1]


def lazy_image_of(layer, axes: str) -> LazyImage:
    """The layer's image as a :class:`LazyImage`: its OME-Zarr store when it came from one, else its array."""
    meta = layer.metadata if isinstance(layer.metadata, dict) else {}
    source = meta.get("source")
    if source and is_zarr(source) and meta.get("source_axes"):
        where = meta.get("where") or ""
        images = open_images(source) if where else [open_image(source)]
        for image in images:
            if image.where == where:
                return image  # all its channels: the dock's Channel picks among them
    if source and meta.get("source_axes") and str(source).lower().endswith(TIFF_SUFFIXES) and Path(source).is_file():
        return open_tiff_lazily(source)  # read tile by tile in any worker process, as the layer was
    level0 = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    axes = axes.upper() or None
    if axes is None or len(axes) != level0.ndim:
        raise UserError(f"axes '{axes or ''}' do not fit '{layer.name}' ({level0.ndim} dimensions)",
                        "give one letter per dimension under Axes, e.g. YX or ZYX")
    spatial = [a for a in axes if a in "ZYX"]
    scale = dict(zip(spatial, tuple(layer.scale)[-len(spatial):]))
    return lazy_from_array(level0, axes, scale, name=layer.name.replace(" ", "_"))


def store_labels_layer(viewer, group: Path, like, name: str, held: np.ndarray | None = None) -> Labels:
    """A Labels layer over an NGFF label image's levels, read lazily; it replaces a layer of the same name.

    ``held``: level 0 read into memory (:func:`finished_labels`), shown instead so that it can be painted
    on; a layer over the store is not editable, since the run writes into it. The layer is reused as
    :func:`~napari_dlmicro.widgets._layers.show_labels` says. The levels are zarr arrays, not dask ones: napari keeps
    the dask chunks it has read in its cache, and a refresh would show the empty chunks of a block written
    since (:func:`~napari_dlmicro.widgets._napari_compat.reload_layer` redraws what the store holds).
    """
    arrays = [held] if held is not None else _levels(group)
    multiscale = len(arrays) > 1
    data = arrays if multiscale else arrays[0]
    spatial = len(arrays[0].shape)
    scale, translate = tuple(like.scale)[-spatial:], tuple(like.translate)[-spatial:]
    shown = show_labels(viewer, name, data, scale, translate, multiscale)
    shown.editable = held is not None  # napari paints only into an array it may write
    return shown


def finished_labels(group: Path) -> np.ndarray | None:
    """Level 0 of a finished run's label image, in memory where it is small enough to paint on, else None."""
    return paintable(zarr.open_array(str(group / "0"), mode="r"))


def _levels(group: Path) -> list[zarr.Array]:
    """Level arrays of an NGFF image group (``0``, ``1``, …), read-only, finest first."""
    levels = []
    while (group / str(len(levels))).exists():
        levels.append(zarr.open_array(str(group / str(len(levels))), mode="r"))
    if not levels:
        raise UserError(f"'{group}' holds no label levels yet", "wait for the run to finish, or run it again")
    return levels
