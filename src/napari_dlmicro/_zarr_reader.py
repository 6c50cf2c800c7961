"""npe2 reader: OME-Zarr images, label images and plates as lazy multiscale napari layers.

An image opens as one image layer per channel (``channel_axis``), each a
pyramid of dask arrays, so napari reads only the chunks in view at the zoom in
view; its ``labels/`` open as labels layers. A label image written on its
own (``<stem>_labels.ome.zarr``) opens as a labels layer. A plate opens as
its first :data:`MAX_FIELDS` fields. Layers carry level 0's pixel size and
offset, and the image's axes and source in ``metadata``.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari_dlmicro._lazy_layer_data import LayerData, image_layer_data, labels_layer_data
from napari_dlmicro._render_hint import hint_async_rendering
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.ome_zarr import ZARR_SUFFIXES, is_zarr, ome_metadata, open_image, open_images

MAX_FIELDS = 16


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Return :func:`read_ome_zarr` for OME-Zarr stores, else None (another reader may take the path)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(isinstance(p, str) for p in paths):
        return None
    if not all(p.rstrip("/").lower().endswith(ZARR_SUFFIXES) or is_zarr(p) for p in paths):
        return None
    try:
        if not all(_is_ome(p) for p in paths):
            return None
    except UserError:
        return None
    return read_ome_zarr


def _is_ome(path: str) -> bool:
    meta = ome_metadata(path)
    return any(k in meta for k in ("multiscales", "plate", "well"))


def read_ome_zarr(path: str | list[str]) -> list[LayerData]:
    """Layer data tuples for one or more OME-Zarr stores."""
    paths = [path] if isinstance(path, str) else list(path)
    layers: list[LayerData] = []
    for p in paths:
        meta = ome_metadata(p)
        images = open_images(p)[:MAX_FIELDS] if ("plate" in meta or "well" in meta) else [open_image(p)]
        for image in images:
            if "image-label" in meta:
                layers.append(labels_layer_data(image, image.name))
                continue
            layers.append(image_layer_data(image))
            layers += _image_labels(image)
            hint_async_rendering(image.name, image.shape, image.axes)
    return layers


def _image_labels(image: LazyImage) -> list[LayerData]:
    """The label images listed in an image's ``labels`` group."""
    folder = Path(image.path) / "labels" if image.path else None
    if folder is None or not is_zarr(folder):
        return []
    names = ome_metadata(folder).get("labels", [])
    out = []
    for name in names:
        try:
            labels = open_image(folder / name)
        except UserError:
            continue  # a label image still being written, or another tool's unfinished one
        out.append(labels_layer_data(labels, f"{image.name} [{name}]"))
    return out
