"""The labelled objects a classifier learns from, checked: classes defined, examples present, labels real.

Every bad training table is refused here with a message that names the
class, label or image at fault, before any training starts and without
changing the table. Objects too small to measure or crop (a sliver cut
off by the image border, a stray pixel) are left out with a note; a class
left without examples by that is refused, saying why.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.classes import ClassSpec, class_names
from napari_dlmicro.core.models.classifier.objects import MIN_PIXELS


@dataclass
class Labelled:
    """Which rows of each image's objects are labelled, and their class indices."""

    rows: list[np.ndarray]  # per image: row indices into its objects
    classes: list[np.ndarray]  # per image: class index of each of those rows
    notes: list[str] = field(default_factory=list)

    @property
    def y(self) -> np.ndarray:
        """Every labelled object's class index, image after image."""
        return np.concatenate(self.classes) if self.classes else np.zeros(0, np.int64)

    def counts(self, n_classes: int) -> np.ndarray:
        """Labelled objects per class."""
        return np.bincount(self.y, minlength=n_classes)


def check_classes(classes: Sequence[ClassSpec]) -> None:
    """At least two classes, or a :class:`UserError`."""
    if len(classes) < 2:
        only = f" ({classes[0].name})" if classes else ""
        raise UserError(f"only {len(classes)} class{only} is defined, and a classifier needs two at least",
                        "define a second class and label some of its objects")


def labelled_rows(images: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                  tables: Sequence[Mapping[int, str]], classes: Sequence[ClassSpec]) -> Labelled:
    """The labelled rows of each image, from ``(name, ids, sizes, at_border)`` per image and its table.

    Refused, each with a message: fewer than two classes; a class name that
    is not one of ``classes``; a label that is not an object of its mask; a
    class without a labelled object (or whose only ones are too small).
    """
    check_classes(classes)
    names = class_names(classes)
    index = {n: k for k, n in enumerate(names)}
    out = Labelled([], [])
    small = np.zeros(len(names), np.int64)
    small_at_border = 0
    for (name, ids, sizes, at_border), table in zip(images, tables):
        unknown = sorted({c for c in table.values() if c not in index})
        if unknown:
            raise UserError(f"the labels of {name} use the class {unknown[0]!r}, which is not one of the classes "
                            f"({', '.join(names)})", f"add the class {unknown[0]!r}, or relabel those objects")
        labels = np.fromiter((int(k) for k in table), np.int64, len(table))
        rows = np.clip(np.searchsorted(ids, labels), 0, max(len(ids) - 1, 0))
        missing = labels[(ids[rows] != labels)] if len(ids) else labels
        if missing.size:
            shown = ", ".join(map(str, sorted(missing.tolist())[:5])) + (" ..." if missing.size > 5 else "")
            raise UserError(f"label {shown} of the class table of {name} is not an object of its mask",
                            "label objects of this mask (after a re-segmentation, carry the labels over)")
        y = np.fromiter((index[table[int(k)]] for k in labels), np.int64, len(labels))
        tiny = sizes[rows] < MIN_PIXELS
        if tiny.any():
            np.add.at(small, y[tiny], 1)
            small_at_border += int(np.count_nonzero(tiny & at_border[rows]))
            out.notes.append(f"{name}: {int(tiny.sum())} labelled object(s) of fewer than {MIN_PIXELS} pixels "
                             f"{'(cut off by the image border) ' if (tiny & at_border[rows]).all() else ''}"
                             "were left out")
        order = np.argsort(rows[~tiny], kind="stable")
        out.rows.append(rows[~tiny][order])
        out.classes.append(y[~tiny][order])
    counts = out.counts(len(names))
    for k, n in enumerate(counts):
        if n == 0 and small[k]:
            where = "cut to a few pixels by the image border" if small_at_border else f"under {MIN_PIXELS} pixels"
            raise UserError(f"the class {names[k]!r} has no usable example: its {small[k]} labelled object(s) are "
                            f"{where}", f"label whole objects of {names[k]!r}")
        if n == 0:
            raise UserError(f"the class {names[k]!r} has no labelled objects",
                            f"label some objects as {names[k]!r}, or remove the class")
    return out
