"""Physical units and pixel sizes from TIFF metadata (OME, ImageJ, resolution tags).

Sizes are held in micrometres whenever the unit is a known length; resolution
tags in inches are print settings, not pixel sizes, and are ignored.
"""
from __future__ import annotations

from xml.etree import ElementTree

import tifffile

UM = "µm"
SPATIAL = "ZYX"

_UM_PER_UNIT = {
    "µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "micrometers": 1.0, "micrometres": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "m": 1e6, "meter": 1e6, "metre": 1e6,
    "pm": 1e-6, "picometer": 1e-6, "picometre": 1e-6,
    "å": 1e-4, "angstrom": 1e-4, "ångström": 1e-4,
}
_NOT_A_UNIT = {"", "pixel", "pixels", "px", "none"}
_RESUNIT_UM = {
    tifffile.RESUNIT.CENTIMETER: 1e4,
    tifffile.RESUNIT.MILLIMETER: 1e3,
    tifffile.RESUNIT.MICROMETER: 1.0,
}


def layer_axes(axes: str) -> str:
    """The axes a napari layer has: all but the channel and RGB-sample axes."""
    return "".join(a for a in axes if a not in "CS")


def um_per(unit: str | None) -> float | None:
    """How many micrometres one ``unit`` is, or None if it is not a known length."""
    if unit is None:
        return None
    key = str(unit).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ").lower()
    return _UM_PER_UNIT.get(key)


def _in_micrometres(sizes: dict[str, float], unit: str | None) -> tuple[dict[str, float], str | None]:
    if not sizes:
        return {}, None
    factor = um_per(unit)
    if factor is not None:
        return {axis: value * factor for axis, value in sizes.items()}, UM
    if unit is None or str(unit).strip().lower() in _NOT_A_UNIT:
        return {}, None
    return dict(sizes), str(unit)


# ---------------------------------------------------------------- axes


def _metadata(tif: tifffile.TiffFile, series) -> tuple[dict[str, float], str | None, list[str]]:
    if tif.is_ome and tif.ome_metadata:
        found = _ome_metadata(tif.ome_metadata, 0)
        if found is not None:
            return found
    if tif.is_imagej and tif.imagej_metadata is not None:
        return _imagej_metadata(tif.imagej_metadata, series.keyframe)
    return _resolution_metadata(series.keyframe)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_metadata(xml: str, index: int) -> tuple[dict[str, float], str | None, list[str]] | None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    images = [e for e in root if _local(e.tag) == "Image"]
    if index >= len(images):
        return None
    pixels = next((e for e in images[index] if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        return None
    sizes: dict[str, float] = {}
    for axis in SPATIAL:
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            continue
        factor = um_per(pixels.get(f"PhysicalSize{axis}Unit", UM))
        if factor is None:
            continue
        sizes[axis] = float(value) * factor
    names = [c.get("Name", "") for c in pixels if _local(c.tag) == "Channel"]
    names = names if all(names) else []
    return sizes, (UM if sizes else None), names


def _imagej_metadata(meta: dict, page) -> tuple[dict[str, float], str | None, list[str]]:
    sizes = _pixel_sizes_from_tags(page)
    if "spacing" in meta:
        sizes["Z"] = float(meta["spacing"])
    unit = meta.get("unit")
    return sizes, (str(unit) if unit is not None else None), []


def _resolution_metadata(page) -> tuple[dict[str, float], str | None, list[str]]:
    tag = page.tags.get("ResolutionUnit")
    factor = _RESUNIT_UM.get(tag.value) if tag is not None else None
    if factor is None:
        return {}, None, []
    sizes = {axis: value * factor for axis, value in _pixel_sizes_from_tags(page).items()}
    return sizes, (UM if sizes else None), []


def _pixel_sizes_from_tags(page) -> dict[str, float]:
    sizes = {}
    for axis in "XY":
        tag = page.tags.get(f"{axis}Resolution")
        if tag is None:
            continue
        num, den = tag.value
        if num > 0 and den > 0:
            sizes[axis] = den / num
    return sizes


# ---------------------------------------------------------------- writing
