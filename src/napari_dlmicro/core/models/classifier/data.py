"""What a classifier trains on: images, their masks and the classes of some of their objects.

In memory (a dock) a :class:`ClassifierData` of :class:`LabelledImage`; on
disk an images folder, a masks folder and a classes folder of
``<stem>.csv`` tables (``label,class``), matched by file name. The classes
folder may also hold ``classes.json``, ``[{"name": ..., "colour": ...}, ...]``:
the classes in their order, with colours (a class listed there must have
labelled objects). Without it the classes are those the tables use, in
:func:`.classes.natural_order`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import image_name, pair_by_name, tiff_files
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.models.classifier.classes import ClassSpec, classes_from_dicts, make_classes, natural_order
from napari_dlmicro.core.models.classifier.table import read_class_csv

CLASSES_FILE = "classes.json"


@dataclass
class LabelledImage:
    """One image (spatial..., [C]), its objects (spatial...) and the classes of those labelled."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    table: dict[int, str] = field(default_factory=dict)


@dataclass
class ClassifierData:
    """Labelled images and the classes, in the order the classifier numbers them."""

    images: list[LabelledImage]
    classes: tuple[ClassSpec, ...]

    @property
    def n_labelled(self) -> int:
        """Labelled objects over every image."""
        return sum(len(i.table) for i in self.images)

    def provenance(self) -> dict:
        """What the classifier was trained on, for its config."""
        return {"data": {"images": [i.name for i in self.images], "labelled": self.n_labelled}}


def classifier_data(images: Sequence[LabelledImage], classes: Sequence[ClassSpec] | Sequence[str] | None = None
                    ) -> ClassifierData:
    """Training data from labelled images; ``classes`` (specs or names) default to those the tables use."""
    if not images:
        raise UserError("no labelled images were given", "give at least one image with labelled objects")
    if classes is None:
        classes = make_classes(natural_order(c for i in images for c in i.table.values()))
    elif classes and isinstance(classes[0], str):
        classes = make_classes(list(classes))
    return ClassifierData(list(images), tuple(classes))


def read_classifier_data(images: str | Path, masks: str | Path | None, classes: str | Path | None) -> ClassifierData:
    """Images, masks and class tables from three folders, matched by name (see the module notes)."""
    if masks is None:
        raise UserError("a classifier needs the objects' masks", "give --masks DIR (label images named like the "
                        "images)")
    if classes is None:
        raise UserError("a classifier needs the classes of some objects", "give --classes DIR with <stem>.csv "
                        "tables of label,class")
    classes = Path(classes)
    if not classes.is_dir():
        raise UserError(f"the classes folder '{classes}' does not exist", "give the folder of <stem>.csv tables")
    image_files = tiff_files([images])
    mask_files = tiff_files([masks])
    pairs = pair_by_name(image_files, mask_files)
    unpaired = [f.name for f in image_files if f not in {p for p, _ in pairs}]
    if unpaired:
        raise UserError(f"{len(unpaired)} image(s) have no mask of the same name ({', '.join(unpaired[:3])})",
                        "name each mask like its image (a.tif -> a.tif or a_labels.tif)")
    tables = {p.stem: p for p in sorted(classes.glob("*.csv"))}
    stems = {image_name(p) for p, _ in pairs}
    orphans = sorted(set(tables) - stems)
    if orphans:
        raise UserError(f"the class table(s) {', '.join(orphans[:3])}.csv have no image of that name",
                        "name each table like its image (a.tif -> a.csv)")
    if not tables:
        raise UserError(f"the classes folder '{classes.name}' holds no <stem>.csv tables",
                        "write one table of label,class per image")
    out = []
    for image_file, mask_file in pairs:
        stem = image_name(image_file)
        table = read_class_csv(tables[stem]) if stem in tables else {}
        out.append(LabelledImage(stem, _channels_last(read_image(image_file)), read_image(mask_file).data, table))
    listed = _read_classes_file(classes / CLASSES_FILE)
    return classifier_data(out, listed)


def _channels_last(image) -> np.ndarray:
    """An image's data with its channel axis (C or RGB samples) last."""
    data, axes = np.asarray(image.data), image.axes.replace("S", "C")
    if "T" in axes:
        raise UserError(f"{image.name} has a time axis", "train on single time points (one file each)")
    if "C" in axes:
        data = np.moveaxis(data, axes.index("C"), -1)
    return data


def _read_classes_file(path: Path) -> tuple[ClassSpec, ...] | None:
    if not path.is_file():
        return None
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path.name} is not readable JSON ({exc})", 'write it as [{"name": "positive", "colour": '
                        '"#d55e00"}, ...]') from None
    if isinstance(items, Mapping):
        items = items.get("classes", [])
    return classes_from_dicts(items)
