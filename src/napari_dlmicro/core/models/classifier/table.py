"""The training table: which object (label id) belongs to which class, as the user clicked it.

A table is a plain ``{label id: class name}`` dict; objects not in it are
unlabelled. On disk it is a CSV with columns ``label,class`` (further
columns, such as a classification's ``probability``, are ignored, so a
corrected classification trains the next classifier).

When the objects are segmented again, :func:`carry_over` keeps every click
whose object is still there: each old object goes to the new object that
covers most of it (:func:`match_labels`), and clicks whose objects vanished,
or that land two classes on one new object, are reported and dropped.
"""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import atomic_output

ClassTable = dict[int, str]
MIN_OVERLAP = 0.5  # an old object carries its class to the new object covering at least this share of it


def read_class_csv(path: str | os.PathLike) -> ClassTable:
    """The ``label,class`` rows of a CSV file; rows with an empty class are unlabelled objects."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"could not read the class table {path.name} ({exc})", "give a CSV file with columns "
                        "label,class") from None
    if not rows:
        raise UserError(f"the class table {path.name} is empty", "give a header row label,class and one row per "
                        "labelled object")
    header = [h.strip().lower() for h in rows[0]]
    if "label" not in header or "class" not in header:
        raise UserError(f"the class table {path.name} has columns {', '.join(rows[0]) or 'none'}",
                        "give a header row with the columns label and class")
    li, ci = header.index("label"), header.index("class")
    table: ClassTable = {}
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        label = row[li].strip() if li < len(row) else ""
        name = row[ci].strip() if ci < len(row) else ""
        try:
            value = float(label)
            if not value.is_integer() or value <= 0:
                raise ValueError(label)
        except ValueError:
            raise UserError(f"row {n} of {path.name} has the label {label!r}, which is not an object id",
                            "give the positive whole-number id of each object") from None
        if not name:
            continue
        if int(value) in table and table[int(value)] != name:
            raise UserError(f"label {int(value)} is in {path.name} twice, as {table[int(value)]!r} and {name!r}",
                            "give each object one class")
        table[int(value)] = name
    return table


def write_class_csv(path: str | os.PathLike, table: Mapping[int, str]) -> Path:
    """Write ``table`` as a ``label,class`` CSV (sorted by label), atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "class"])
        writer.writerows((int(k), table[k]) for k in sorted(table))
    return Path(path)


def prune(table: Mapping[int, str], ids) -> tuple[ClassTable, list[int]]:
    """``table`` without the labels that are not among ``ids`` (objects erased since), and those dropped."""
    present = set(np.asarray(ids, np.int64).tolist())
    kept = {int(k): v for k, v in table.items() if int(k) in present}
    return kept, sorted(int(k) for k in table if int(k) not in present)


def match_labels(old, new, min_overlap: float = MIN_OVERLAP) -> dict[int, int]:
    """``{old id: new id}``: each old object to the new object covering the largest share of its pixels.

    Old objects with less than ``min_overlap`` of their pixels in any one new
    object have no match. Both label images must have the same shape.
    """
    old, new = np.asarray(old), np.asarray(new)
    if old.shape != new.shape:
        raise UserError(f"the old labels have shape {old.shape}, the new {new.shape}",
                        "carry classes over between segmentations of the same image")
    both = (old > 0) & (new > 0)
    a = old[both].astype(np.int64)
    b = new[both].astype(np.int64)
    if not a.size:
        return {}
    pairs, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    sizes = np.bincount(old.ravel()[old.ravel() > 0].astype(np.int64))
    order = np.lexsort((-counts, pairs[0]))  # per old id, the largest overlap first
    pairs, counts = pairs[:, order], counts[order]
    first = np.concatenate([[True], pairs[0, 1:] != pairs[0, :-1]])
    olds, news, overlap = pairs[0, first], pairs[1, first], counts[first]
    keep = overlap >= min_overlap * sizes[olds]
    return {int(o): int(n) for o, n in zip(olds[keep], news[keep])}


def carry_over(table: Mapping[int, str], old, new, min_overlap: float = MIN_OVERLAP
               ) -> tuple[ClassTable, list[str]]:
    """The clicks of ``table`` (on ``old`` labels) moved onto the ``new`` labels, and notes on what was dropped.

    A click moves to the new object covering most of its old object; clicks
    whose object has no such match are dropped, and so are clicks of different
    classes that land on one new object (two objects merged). Clicks of one
    class that land together keep that class.
    """
    mapping = match_labels(old, new, min_overlap)
    moved: dict[int, set[str]] = {}
    lost = []
    for label, name in table.items():
        target = mapping.get(int(label))
        if target is None:
            lost.append(int(label))
        else:
            moved.setdefault(target, set()).add(name)
    out = {k: next(iter(v)) for k, v in moved.items() if len(v) == 1}
    merged = sorted(k for k, v in moved.items() if len(v) > 1)
    notes = []
    if lost:
        notes.append(f"{len(lost)} labelled object(s) are gone after the new segmentation (old labels "
                     f"{_ids(lost)}): their classes were dropped")
    if merged:
        notes.append(f"{len(merged)} new object(s) merge objects of different classes (new labels {_ids(merged)}): "
                     "label them again")
    return out, notes


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, sorted(ids)[:5])) + (" ..." if len(ids) > 5 else "")
