"""Per-object measurements of a labels image, as columns of numbers.

Column names carry their unit, so a table never leaves its unit behind:

- ``label``
- 2D: ``area_<u>2``; 3D: ``volume_<u>3``
- ``centroid_z_<u>`` (3D), ``centroid_y_<u>``, ``centroid_x_<u>``
- 2D only: ``perimeter_<u>``, ``eccentricity`` (no unit)
- with an intensity image: ``mean_intensity``, ``max_intensity``

``<u>`` is the length unit of ``scale`` (``um`` for micrometres) or, without a
scale, ``px``; pixel counts are then plain (``area_px``, ``volume_px``).
The table is a dict of equal-length arrays: ``pandas.DataFrame(table)``
turns it into a frame, ``napari`` takes it as ``Labels.features``.
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from skimage.measure import find_contours, label, regionprops, regionprops_table

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import atomic_output


def measure_labels(
    labels,
    image=None,
    scale: Mapping[str, float] | Sequence[float] | None = None,
    unit: str = "um",
) -> dict[str, np.ndarray]:
    """Measure every object of a 2D or 3D labels array (see the module notes).

    ``scale`` is a pixel size per axis (``{"Z": 2.0, "Y": 0.5, "X": 0.5}``
    or a sequence in array order) in ``unit``; axes missing from a mapping
    count as 1. ``image`` is a single-channel image of the same shape.
    Labels without objects give every column with zero rows.
    """
    labels = _check_labels(labels)
    image = _check_image(image, labels.shape)
    spacing = _spacing(scale, labels.ndim)
    u = "px" if spacing is None else _unit_suffix(unit)
    names = "zyx"[-labels.ndim:]
    props = ["label", "area", "centroid"]
    if labels.ndim == 2:
        props.append("eccentricity")
    if image is not None:
        props += ["intensity_mean", "intensity_max"]
    raw = regionprops_table(labels, intensity_image=image, properties=props, spacing=spacing)

    table: dict[str, np.ndarray] = {"label": raw["label"].astype(np.int64)}
    if labels.ndim == 2:
        table[f"area_{u}" if u == "px" else f"area_{u}2"] = raw["area"].astype(np.float64)
    else:
        table[f"volume_{u}" if u == "px" else f"volume_{u}3"] = raw["area"].astype(np.float64)
    for i, axis in enumerate(names):
        table[f"centroid_{axis}_{u}"] = raw[f"centroid-{i}"].astype(np.float64)
    if labels.ndim == 2:
        table[f"perimeter_{u}"] = _perimeters(labels, table["label"], spacing)
        table["eccentricity"] = raw["eccentricity"].astype(np.float64)
    if image is not None:
        table["mean_intensity"] = raw["intensity_mean"].astype(np.float64)
        table["max_intensity"] = raw["intensity_max"].astype(np.float64)
    return table


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(
            f"labels must be an integer array, got {labels.dtype}",
            "measure a labels layer (0 = background), not an image",
        )
    if labels.ndim not in (2, 3):
        raise UserError(
            f"labels must be 2D or 3D to measure, got shape {labels.shape}",
            "measure one time point or one channel at a time",
        )
    if labels.size and labels.min() < 0:
        raise UserError("labels contain negative values", "use 0 for background and positive ids for objects")
    return labels


def _check_image(image, shape: tuple[int, ...]) -> np.ndarray | None:
    if image is None:
        return None
    image = np.asarray(image)
    if image.shape != shape:
        raise UserError(
            f"the intensity image has shape {image.shape} but the labels {shape}",
            "pick a single-channel image of the same size as the labels",
        )
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool) or np.iscomplexobj(image):
        raise UserError(f"cannot measure intensities of {image.dtype} data", "pick a numeric image")
    return image


def _spacing(scale, ndim: int) -> tuple[float, ...] | None:
    if scale is None:
        return None
    if isinstance(scale, Mapping):
        upper = {str(k).upper(): float(v) for k, v in scale.items()}
        values = tuple(upper.get(axis, 1.0) for axis in "ZYX"[-ndim:])
    else:
        values = tuple(float(v) for v in scale)
        if len(values) != ndim:
            raise UserError(
                f"{len(values)} pixel sizes were given for {ndim}D labels",
                f"give {ndim} pixel sizes, one per axis",
            )
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise UserError(f"pixel sizes {values} are not all positive", "give positive pixel sizes")
    return values


def _unit_suffix(unit: str) -> str:
    text = str(unit).replace("µ", "u").replace("μ", "u")
    text = re.sub(r"[^A-Za-z0-9]", "", text)
    return text or "unit"


def _perimeters(labels: np.ndarray, ids: np.ndarray, spacing: tuple[float, ...] | None) -> np.ndarray:
    """Perimeters in physical length.

    With square pixels this is scikit-image's ``perimeter`` times the pixel
    size; with rectangular pixels (which it does not support) it is the length
    of the object's marching-squares outline in physical units.
    """
    if spacing is None or spacing[0] == spacing[1]:
        raw = regionprops_table(labels, properties=("label", "perimeter"))
        return raw["perimeter"].astype(np.float64) * (1.0 if spacing is None else spacing[0])
    lengths = {region.label: _outline_length(region.image, spacing) for region in regionprops(labels)}
    return np.array([lengths[i] for i in ids], dtype=np.float64)


def _outline_length(mask: np.ndarray, spacing: tuple[float, ...]) -> float:
    padded = np.pad(mask, 1).astype(np.float32)
    total = 0.0
    for contour in find_contours(padded, 0.5):
        steps = np.diff(contour, axis=0) * np.asarray(spacing)
        total += float(np.sqrt((steps**2).sum(axis=1)).sum())
    return total


def write_csv(path: str | os.PathLike, table: Mapping[str, Sequence]) -> Path:
    """Write a column table as CSV (header row, then one row per object), atomically."""
    columns = list(table)
    lengths = {len(table[c]) for c in columns}
    if len(lengths) > 1:
        raise UserError("the table's columns have different lengths", "give one value per object in every column")
    values = [np.asarray(table[c]).tolist() for c in columns]
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(zip(*values))
    return Path(path)


def measure_frames(labels: np.ndarray, intensity: np.ndarray | None, axes: str,
                   scale: dict[str, float] | None = None, class_map: bool = False) -> dict[str, np.ndarray]:
    """Measurements for labels with axes ``axes`` (T, Z, Y, X): per frame with a
    ``frame`` column when there is a T axis, else as one 2D or 3D image.

    ``class_map`` (a semantic model's class ids): every connected region of one
    class is measured as an object, with a ``class`` column.
    """
    spatial = "".join(a for a in axes if a in "ZYX")
    sc = tuple((scale or {}).get(a, 1.0) for a in spatial) if scale else None
    measure = measure_class_regions if class_map else measure_labels
    if "T" not in axes:
        return measure(labels, intensity, sc)
    tables = []
    for t in range(labels.shape[0]):
        tab = measure(labels[t], None if intensity is None else intensity[t], sc)
        tables.append({"frame": np.full(len(tab["label"]), t), **tab})
    return {k: np.concatenate([tb[k] for tb in tables]) for k in tables[0]}


def measure_class_regions(classes, image=None, scale=None, unit: str = "um") -> dict[str, np.ndarray]:
    """:func:`measure_labels` of every connected region of a class map, with its ``class``."""
    classes = _check_labels(classes)
    regions = label(classes, background=0)
    class_of = np.zeros(int(regions.max()) + 1, np.int64)
    class_of[regions.ravel()] = classes.ravel()
    table = measure_labels(regions, image, scale, unit)
    return {"label": table["label"], "class": class_of[table["label"]], **table}
