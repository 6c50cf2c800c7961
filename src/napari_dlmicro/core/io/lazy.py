"""Images that stay on disk: a pyramid of dask arrays with axes, pixel sizes and channels.

:class:`LazyImage` is what the OME-Zarr reader and the large-TIFF reader give;
blockwise jobs read it block by block through its :attr:`LazyImage.source`,
and napari shows :attr:`LazyImage.levels` as a multiscale layer. TIFF files
over :data:`LAZY_TIFF_BYTES`, or larger than a quarter of the free memory,
open lazily; smaller ones are read whole as before.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import dask.array as da
import numpy as np
import psutil
import tifffile

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import image_name
from napari_dlmicro.core.io.sources import MemorySource, Source, TiffSource
from napari_dlmicro.core.io.tiff_metadata import _in_micrometres, _metadata
from napari_dlmicro.core.io.tiff_read import tiff_axes

LAZY_TIFF_BYTES = 2 << 30  # TIFFs above 2 GiB open lazily whatever the free memory


@dataclass
class LazyImage:
    """A possibly huge image: full resolution first, axes in stored order (letters of ``TCZYX``).

    ``scale`` holds level 0's pixel size per spatial axis letter in ``unit``;
    ``translation`` its offset. ``source`` reads level 0 region by region in
    any process. ``name`` is the image's stem (no ``.ome.zarr``), ``where``
    says which field of a plate it is (``B/3/0``), or is empty.
    """

    levels: list[da.Array]
    axes: str
    source: Source
    scale: dict[str, float] = field(default_factory=dict)
    translation: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    channel_names: list[str] = field(default_factory=list)
    name: str = "image"
    path: Path | None = None  # the OME-Zarr image group, or the TIFF file
    where: str = ""
    ngff_version: str | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.levels[0].shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.levels[0].dtype)

    @property
    def chunks(self) -> tuple[int, ...]:
        """Level 0's chunk size per axis."""
        return tuple(int(c[0]) for c in self.levels[0].chunks)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def level_scale(self, level: int) -> dict[str, float]:
        """Pixel sizes of pyramid ``level``, from level 0's and the shapes' ratio."""
        out = {}
        for axis in "ZYX":
            if axis in self.axes:
                i = self.axes.index(axis)
                ratio = self.shape[i] / self.levels[level].shape[i]
                out[axis] = self.scale.get(axis, 1.0) * ratio
        return out

    def spatial_shape(self) -> dict[str, int]:
        return {a: n for a, n in zip(self.axes, self.shape)}


def lazy_from_array(data, axes: str, scale: dict[str, float] | None = None, name: str = "image") -> LazyImage:
    """A :class:`LazyImage` over an array already held (numpy, dask or zarr), one level."""
    axes = axes.upper().replace("S", "C")
    if len(axes) != np.ndim(data):
        raise UserError(f"axes '{axes}' name {len(axes)} dimensions but the image has {np.ndim(data)}",
                        "give one letter per dimension")
    level = data if isinstance(data, da.Array) else da.from_array(data, chunks=_default_chunks(data.shape, axes))
    return LazyImage([level], axes, MemorySource(data, name), dict(scale or {}), name=name)


def _default_chunks(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    return tuple(min(n, 256) if a in "YX" else (min(n, 64) if a == "Z" else 1) for a, n in zip(axes, shape))


def should_open_lazily(path: str | os.PathLike) -> bool:
    """True for TIFFs too big to read whole: over :data:`LAZY_TIFF_BYTES` or a quarter of the free memory."""
    try:
        with tifffile.TiffFile(path) as tif:
            nbytes = tif.series[0].nbytes
    except (tifffile.TiffFileError, OSError, IndexError, ValueError):
        return False  # the eager reader names what is wrong with the file
    return nbytes > min(LAZY_TIFF_BYTES, psutil.virtual_memory().available // 4)


def open_tiff_lazily(path: str | os.PathLike, series: int = 0) -> LazyImage:
    """A TIFF file as a :class:`LazyImage` (all pyramid levels it stores), read through tifffile's Zarr store."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"there is no file at {path}", "check the path and the file name")
    try:
        with tifffile.TiffFile(path) as tif:
            s = tif.series[series]
            axes = tiff_axes(s.axes, s.shape).replace("S", "C")
            sizes, unit, names = _metadata(tif, s)
            n_levels = len(s.levels)
    except tifffile.TiffFileError as exc:
        raise UserError(f"{path.name} is not a readable TIFF file ({exc})", "open a .tif/.tiff file") from None
    levels = []
    for level in range(n_levels):
        src = TiffSource(str(path), series, level)
        arr = src.open()
        levels.append(da.from_array(arr, chunks=_tiff_chunks(arr.chunks, arr.shape, axes)))
    scale, unit = _in_micrometres({a: v for a, v in sizes.items() if a in axes}, unit)
    n_channels = levels[0].shape[axes.index("C")] if "C" in axes else 1
    return LazyImage(levels, axes, TiffSource(str(path), series, 0), scale, unit=unit,
                     channel_names=names if len(names) == n_channels else [], name=image_name(path), path=path)


def display_levels(image: LazyImage, smallest: int = 2048) -> list[da.Array]:
    """The image's levels, or for an image stored at one resolution, views of it that halve Y and X.

    napari draws a one-level layer by reading the whole plane; these strided
    views (to at most ``smallest`` pixels a side) let it read only the chunks
    in view when zoomed in. Zoomed out, a view still reads every chunk of full
    resolution once: a pyramidal TIFF or an OME-Zarr store has real levels.
    """
    if len(image.levels) > 1:
        return list(image.levels)
    level0 = image.levels[0]
    yx = [image.axes.index(a) for a in "YX" if a in image.axes]
    levels, step = [level0], 1
    while yx and max(level0.shape[i] // step for i in yx) > smallest:
        step *= 2
        levels.append(level0[tuple(slice(None, None, step) if i in yx else slice(None) for i in range(level0.ndim))])
    return levels


def looks_rgb(image: LazyImage) -> bool:
    """True for 8-bit images whose last axis is 3 or 4 colour samples (a brightfield slide, an H&E scan)."""
    return image.axes.endswith("C") and image.shape[-1] in (3, 4) and image.dtype == np.uint8


def _tiff_chunks(chunks: tuple[int, ...], shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    """Dask chunks of whole TIFF strips or tiles, grown to about 1024 px in Y and X."""
    out = []
    for c, n, a in zip(chunks, shape, axes):
        if a in "YX":
            c = min(n, max(c, (1024 // max(c, 1)) * c))
        out.append(int(c))
    return tuple(out)
