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
from typing import Any

from napari_dlmicro._render_hint import hint_async_rendering
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.ome_zarr import ZARR_SUFFIXES, is_zarr, ome_metadata, open_image, open_images

LayerData = tuple[Any, dict[str, Any], str]
MAX_FIELDS = 16
COLORMAPS = ("magenta", "green", "cyan", "yellow", "red", "blue")


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
                layers.append(_labels_layer(image, image.name))
                continue
            layers.append(_image_layer(image))
            layers += _image_labels(image)
            hint_async_rendering(image.name, image.shape, image.axes)
    return layers


def _spatial_kwargs(image: LazyImage) -> dict[str, Any]:
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


def _image_layer(image: LazyImage) -> LayerData:
    data = image.levels if len(image.levels) > 1 else image.levels[0]
    kwargs = {**_spatial_kwargs(image), "multiscale": len(image.levels) > 1}
    if "C" in image.axes and image.shape[image.axes.index("C")] > 1:
        n = image.shape[image.axes.index("C")]
        names = image.channel_names or [f"ch{i}" for i in range(n)]
        kwargs.update(channel_axis=image.axes.index("C"), name=[f"{image.name} [{c}]" for c in names],
                      colormap=[COLORMAPS[i % len(COLORMAPS)] for i in range(n)], blending="additive")
    else:
        if "C" in image.axes:
            c = image.axes.index("C")
            levels = [lv[tuple(0 if i == c else slice(None) for i in range(lv.ndim))] for lv in image.levels]
            data = levels if len(levels) > 1 else levels[0]
        kwargs["name"] = image.name
    return data, kwargs, "image"


def _labels_layer(image: LazyImage, name: str) -> LayerData:
    data = image.levels if len(image.levels) > 1 else image.levels[0]
    return data, {**_spatial_kwargs(image), "multiscale": len(image.levels) > 1, "name": name}, "labels"


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
        out.append(_labels_layer(labels, f"{image.name} [{name}]"))
    return out
