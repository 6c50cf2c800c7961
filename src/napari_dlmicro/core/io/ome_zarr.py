"""Reading OME-Zarr: NGFF 0.4 (Zarr v2) and 0.5 (Zarr v3) images and HCS plates, lazily.

An image opens as a :class:`LazyImage`: its pyramid as dask arrays, its axes
as letters of ``TCZYX``, level 0's pixel sizes (and unit) from the
``coordinateTransformations`` and its channel names from ``omero``. A plate
opens as a list of images, one per field of every well, each named
``<plate>_<row><col>_<field>`` with ``where = "row/col/field"``.

The metadata are parsed by ``ome-zarr`` and then checked against the arrays
themselves, so a store whose metadata lie (axes that do not match the arrays'
dimensions, a pyramid level larger than the one above it, a dataset that is
not there, more channel names than channels) is refused with what is wrong.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import dask.array as da
import zarr
from ome_zarr.io import ZarrLocation
from ome_zarr.reader import OMERO, Multiscales, Node
from ome_zarr.writer import get_metadata

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.io.sources import ZarrSource
from napari_dlmicro.core.io.tiff_metadata import UM

ZARR_SUFFIXES = (".ome.zarr", ".zarr")
_UNITS_UM = {"micrometer": 1.0, "micron": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "meter": 1e6,
             "centimeter": 1e4, "angstrom": 1e-4}
_TYPE_LETTER = {"time": "T", "channel": "C"}


def zarr_name(path: str | os.PathLike) -> str:
    """The store's name without ``.ome.zarr`` or ``.zarr`` (``plate.ome.zarr`` -> ``plate``)."""
    name = Path(path).name.rstrip("/")
    for suffix in ZARR_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_zarr(path: str | os.PathLike) -> bool:
    """True for a folder that holds Zarr (v2 ``.zgroup``/``.zattrs`` or v3 ``zarr.json``) metadata."""
    p = Path(path)
    return p.is_dir() and any((p / f).is_file() for f in ("zarr.json", ".zgroup", ".zattrs"))


def ome_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The OME attributes of the group at ``path`` (under ``ome`` for NGFF 0.5), or raise if it is not Zarr."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"there is nothing at {path}", "check the path")
    if not is_zarr(path):
        raise UserError(f"{path.name} is not a Zarr store (no zarr.json or .zgroup inside)",
                        "give an OME-Zarr image (.ome.zarr folder), a plate, or a TIFF file")
    try:
        return dict(get_metadata(zarr.open_group(str(path), mode="r")))
    except (ValueError, OSError, KeyError, TypeError) as exc:
        raise UserError(f"{path.name} has unreadable Zarr metadata ({exc})",
                        "copy or convert the store again") from None


def open_images(path: str | os.PathLike, allow_missing: bool = False) -> list[LazyImage]:
    """Every image an OME-Zarr store holds: one for an image, one per field for a well or a plate."""
    meta = ome_metadata(path)
    if "plate" in meta:
        return open_plate(path, allow_missing)
    if "well" in meta:
        return _well_fields(Path(path), meta["well"], zarr_name(path), "", allow_missing)
    return [open_image(path, allow_missing)]


def open_image(path: str | os.PathLike, allow_missing: bool = False) -> LazyImage:
    """One OME-Zarr image (a group with ``multiscales``) as a :class:`LazyImage`."""
    path = Path(path)
    meta = ome_metadata(path)
    if "multiscales" not in meta:
        what = "a plate" if "plate" in meta else ("a labels group" if "labels" in meta else "not OME-Zarr")
        raise UserError(f"{path.name} is {what}: it has no 'multiscales' image metadata",
                        "open an OME-Zarr image" + (", or the plate as a whole (every field)" if "plate" in meta
                                                    else " (NGFF 0.4 or 0.5)"))
    logging.getLogger("ome_zarr").setLevel(logging.ERROR)  # it logs every dataset at INFO and fmt guesses at WARNING
    version = str(meta.get("version") or meta["multiscales"][0].get("version") or "0.4")
    location = ZarrLocation(str(path), mode="r")
    try:
        node = Node(location, [])
        if not Multiscales.matches(location):
            raise UserError(f"{path.name} has multiscales metadata that ome-zarr cannot read", "check the store")
        spec = Multiscales(node)
        channel_names = _channel_names(node, location)
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, FileNotFoundError) as exc:
        raise UserError(f"{path.name} has NGFF metadata that do not describe its arrays ({exc})",
                        "fix or rewrite the store's .zattrs/zarr.json") from None
    axes = _axes_letters(node.metadata.get("axes"), node.data[0].ndim, path)
    _check_pyramid(node.data, axes, spec.datasets, path)
    scale, translation, unit = _physical(meta["multiscales"][0], node.metadata.get("coordinateTransformations"),
                                         axes, path)
    n_channels = node.data[0].shape[axes.index("C")] if "C" in axes else 1
    if len(channel_names) > n_channels:
        raise UserError(f"{path.name} names {len(channel_names)} channels but its arrays have {n_channels}",
                        "fix the store's omero metadata")
    source = ZarrSource(str(path), spec.datasets[0], allow_missing)
    levels = [_lazy(ZarrSource(str(path), p, allow_missing)) for p in spec.datasets]
    return LazyImage(levels, axes, source, scale, translation, unit, channel_names[:n_channels] if
                     len(channel_names) == n_channels else [], zarr_name(path), path, "", version)


def open_plate(path: str | os.PathLike, allow_missing: bool = False) -> list[LazyImage]:
    """Every field of every well of an HCS plate, in the plate's well order."""
    path = Path(path)
    plate = ome_metadata(path).get("plate")
    if not isinstance(plate, dict) or not plate.get("wells"):
        raise UserError(f"{path.name} has no wells in its plate metadata", "give an OME-Zarr HCS plate")
    images: list[LazyImage] = []
    for well in plate["wells"]:
        well_path = path / well["path"]
        if not well_path.exists():
            raise UserError(f"well {well['path']} of {path.name} is listed but not in the store",
                            "the plate is incomplete: copy it again")
        meta = ome_metadata(well_path).get("well") or {}
        images += _well_fields(well_path, meta, zarr_name(path), well["path"], allow_missing)
    return images


def _well_fields(well_path: Path, well: dict, plate_name: str, well_key: str,
                 allow_missing: bool) -> list[LazyImage]:
    out = []
    for field in well.get("images", []):
        image = open_image(well_path / field["path"], allow_missing)
        where = "/".join(p for p in (well_key, str(field["path"])) if p)
        image.where = where
        image.name = f"{plate_name}_{where.replace('/', '_')}" if where else plate_name
        out.append(image)
    if not out:
        raise UserError(f"well {well_key or well_path.name} holds no images", "check the plate's well metadata")
    return out


def _lazy(source: ZarrSource) -> da.Array:
    array = source.open()
    return da.from_array(array, chunks=array.chunks, inline_array=True)


def _channel_names(node: Node, location: ZarrLocation) -> list[str]:
    if not OMERO.matches(location):
        return []
    channels = location.root_attrs.get("omero", {}).get("channels", [])
    return [str(c.get("label") or f"ch{i}") for i, c in enumerate(channels)]


def _axes_letters(axes: list | None, ndim: int, path: Path) -> str:
    """NGFF axes as letters of ``TCZYX``; NGFF 0.1-0.3 stores without axes are TCZYX from the right."""
    if not axes:
        return "TCZYX"[-ndim:]
    letters = ""
    for axis in axes:
        name = axis if isinstance(axis, str) else str(axis.get("name", ""))
        kind = "" if isinstance(axis, str) else str(axis.get("type", ""))
        letter = _TYPE_LETTER.get(kind) or name.upper()[:1]
        if letter not in "TCZYX" or letter in letters:
            raise UserError(f"{path.name} has an axis '{name}' ({kind or 'no type'}) that is not t, c, z, y or x",
                            "store the image with axes named t, c, z, y, x")
        letters += letter
    if len(letters) != ndim:
        raise UserError(f"{path.name}'s metadata name {len(letters)} axes ({letters.lower()}) but its arrays "
                        f"have {ndim} dimensions", "fix the store's multiscales axes")
    if "Y" not in letters or "X" not in letters:
        raise UserError(f"{path.name} has no y and x axes ({letters.lower()})", "every image needs y and x axes")
    return letters


def _check_pyramid(levels: list[da.Array], axes: str, paths: list[str], path: Path) -> None:
    for i, (level, p) in enumerate(zip(levels, paths)):
        if level.ndim != len(axes):
            raise UserError(f"{path.name}/{p} has {level.ndim} dimensions but the metadata name {len(axes)} axes",
                            "fix the store's multiscales axes")
        if i and any(n > m for n, m in zip(level.shape, levels[i - 1].shape)):
            raise UserError(f"{path.name}/{p} (level {i}, shape {level.shape}) is larger than the level above it "
                            f"({levels[i - 1].shape})", "list the multiscales datasets from full resolution down")
        if min(level.shape) == 0:
            raise UserError(f"{path.name}/{p} is empty (shape {level.shape})", "the store holds no pixels there")


def _physical(multiscale: dict, transforms: list | None, axes: str,
              path: Path) -> tuple[dict[str, float], dict[str, float], str | None]:
    """Level 0's pixel size and offset per spatial axis letter, in micrometres where the unit is a length."""
    scale: dict[str, float] = {}
    translation: dict[str, float] = {}
    first = (transforms or [None])[0] or []
    global_ = multiscale.get("coordinateTransformations") or []
    for t in list(first) + list(global_):
        values = t.get("scale") if t.get("type") == "scale" else t.get("translation")
        if values is None:
            continue
        if len(values) != len(axes):
            raise UserError(f"{path.name}'s {t['type']} has {len(values)} values for {len(axes)} axes",
                            "fix the store's coordinateTransformations")
        for a, v in zip(axes, values):
            if a in "ZYX":
                if t["type"] == "scale":
                    scale[a] = scale.get(a, 1.0) * float(v)
                else:
                    translation[a] = translation.get(a, 0.0) + float(v)
    units = {}
    for axis, letter in zip(multiscale.get("axes") or [], axes):
        if isinstance(axis, dict) and axis.get("unit") and letter in "ZYX":
            units[letter] = str(axis["unit"]).lower()
    factors = {_UNITS_UM.get(u) for u in units.values()}
    if units and None not in factors and len(factors) == 1:
        f = factors.pop()
        return ({a: v * f for a, v in scale.items()}, {a: v * f for a, v in translation.items()}, UM)
    unit = next(iter(units.values())) if len(set(units.values())) == 1 else None
    return scale, translation, unit
