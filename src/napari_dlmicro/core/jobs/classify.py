"""Classifying objects: training a classifier on labelled objects in memory, and applying one to arrays or files.

The dock's path: :func:`train_classifier_job` on the image and Labels
layers' data and the clicks, :func:`classify_job` on any image and its
labels. The command line's: :func:`classify_files_job`, which writes for
each image ``<stem>_classes.csv`` (``label,class,probability``, one row per
object; with a time axis a ``frame`` column first) and
``<stem>_classmap.tif`` (each object's pixels set to its class index,
1-based in the classifier's class order), one finished file at a time.

What a Classification dock calls (everything else is layers and buttons):

- measure once per segmentation: ``features_job(image, labels, token)`` ->
  :class:`ObjectFeatures` (``.table()`` for the Labels layer's ``features``,
  ``.centroids`` for markers);
- at every click: ``fit_fast(features, clicks, classes)`` (well under a
  second), then ``model.predict_features(features)`` -> :class:`Prediction`
  (``features_table()``, ``class_map(labels)``, ``counts()``, ``colours()``,
  ``suggest(n, exclude=clicks)``); ``assess_fast(...)`` for the held-out
  accuracy and confusion matrix;
- why: ``model.explain(features, label)`` (fast) or
  ``model.grad_cam(image, labels, label)`` (deep: a :class:`Saliency` with
  the region it covers in image pixels);
- a new segmentation: ``carry_over(clicks, old_labels, new_labels)``;
- deep training: :func:`train_classifier_job`; applying: :func:`classify_job`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import image_name, name_key, tiff_files
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.io.tiff_write import write_labels
from napari_dlmicro.core.jobs.train import train_job
from napari_dlmicro.core.labels.measure import write_csv
from napari_dlmicro.core.models.classifier.base import ObjectClassifier
from napari_dlmicro.core.models.classifier.classes import ClassSpec
from napari_dlmicro.core.models.classifier.data import LabelledImage, classifier_data
from napari_dlmicro.core.models.classifier.folder import load_classifier
from napari_dlmicro.core.models.classifier.prediction import Prediction
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, ProgressClock, relay, run_to_end


def train_classifier_job(image, labels, table: Mapping[int, str], classes: Sequence[ClassSpec] | Sequence[str],
                         settings: Mapping[str, Any] | None = None, *, name: str = "classifier",
                         out: str | Path | None = None, device: str = "auto", threads: int | None = None,
                         token: CancelToken = NEVER) -> Job:
    """Train a classifier (``settings["classifier"]``: fast or deep) on one image's labelled objects.

    ``table`` maps label ids to class names; ``classes`` give the order (and
    colours). Returns a :class:`TrainResult` whose ``model`` classifies.
    """
    data = classifier_data([LabelledImage(name, np.asarray(image), np.asarray(labels), dict(table))], classes)
    return (yield from train_job("classifier", data, settings, out=out, name=name, device=device, threads=threads,
                                 token=token))


def as_classifier(model: str | Path | ObjectClassifier, device: str | torch.device = "auto") -> ObjectClassifier:
    """A loaded classifier, or the one in folder (or stored under the name) ``model``."""
    if isinstance(model, ObjectClassifier):
        return model
    return load_classifier(model, device if isinstance(device, torch.device) else resolve_device(device))


def classify_job(image, labels, model: str | Path | ObjectClassifier, token: CancelToken = NEVER,
                 device: str | torch.device = "auto") -> Job:
    """Classify every object of ``labels`` (2D or 3D) over ``image``; returns a :class:`Prediction`."""
    return (yield from as_classifier(model, device).predict_job(image, labels, token))


def classify(image, labels, model: str | Path | ObjectClassifier, device: str | torch.device = "auto") -> Prediction:
    """Headless :func:`classify_job`."""
    return run_to_end(classify_job(image, labels, model, device=device))


@dataclass(frozen=True)
class ClassifiedFile:
    """One image done: where its table and class map went, and the counts per class."""

    source: Path
    table: Path
    class_map: Path
    counts: dict[str, int]


def _frames(data: np.ndarray, axes: str, mask: np.ndarray, mask_axes: str, name: str):
    """``(frame or None, image (spatial..., C), labels)`` per time point of an image and its mask."""
    axes, mask_axes = axes.replace("S", "C"), mask_axes.replace("S", "C")
    if "C" in mask_axes:
        raise UserError(f"the mask of {name} has a channel axis", "give label images (one id per object)")
    if "C" in axes:
        data = np.moveaxis(data, axes.index("C"), -1)
        axes = axes.replace("C", "") + "C"
    if "T" not in axes:
        return [(None, data, mask)]
    if "T" not in mask_axes or mask.shape[mask_axes.index("T")] != data.shape[axes.index("T")]:
        raise UserError(f"{name} has {data.shape[axes.index('T')]} time points but its mask does not",
                        "give a mask with the same time points")
    data, mask = np.moveaxis(data, axes.index("T"), 0), np.moveaxis(mask, mask_axes.index("T"), 0)
    return [(t, data[t], mask[t]) for t in range(data.shape[0])]


def classify_file_job(path: str | Path, mask: str | Path, model: str | Path | ObjectClassifier,
                      outdir: str | Path, token: CancelToken = NEVER, device: str | torch.device = "auto") -> Job:
    """Classify the objects of one image file; writes its table and class map (see the module notes)."""
    classifier = as_classifier(model, device)
    img, lab = read_image(path), read_image(mask)
    name = Path(path).name
    frames = _frames(np.asarray(img.data), img.axes, np.asarray(lab.data), lab.axes, name)
    clock = ProgressClock(len(frames) * 1000, "classifying")
    rows: dict[str, list] = {}
    maps = []
    counts: dict[str, int] = {c.name: 0 for c in classifier.classes}
    for t, image, labels in frames:
        token.check()
        where = name if t is None else f"{name} (time point {t})"
        obj = classifier.objects(image, labels, where)
        pred: Prediction = yield from relay(classifier.predict_job(None, None, token, objects=obj),
                                            lambda ev, t=t: clock.tick((t or 0) * 1000 + int(ev.fraction * 1000),
                                                                       ev.message))
        table = pred.table() if t is None else {"frame": np.full(len(pred.ids), t), **pred.table()}
        for key, column in table.items():
            rows.setdefault(key, []).append(np.asarray(column))
        maps.append(pred.class_map(obj.labels))
        for k, v in pred.counts().items():
            counts[k] += v
    outdir, stem = Path(outdir), image_name(path)
    class_map = maps[0] if frames[0][0] is None else np.stack(maps)
    spatial = "".join(a for a in lab.axes if a in "TZYX")
    map_path = write_labels(outdir / f"{stem}_classmap.tif", class_map, scale=img.scale or None, axes=spatial)
    csv_path = write_csv(outdir / f"{stem}_classes.csv", {k: np.concatenate(v) for k, v in rows.items()})
    yield clock.tick(clock.total, f"{name}: {', '.join(f'{n} {c}' for c, n in counts.items())}")
    return ClassifiedFile(Path(path), csv_path, map_path, counts)


def mask_files_for(images: Sequence[Path], masks: str | Path) -> list[Path]:
    """The mask of each image in folder ``masks``: same name, or the name plus ``_labels``, ``_masks``, ..."""
    by_key: dict[str, Path] = {}
    for f in tiff_files([masks]):
        by_key.setdefault(name_key(f, ("_labels", "_masks", "_mask", "_gt", "_pred")), f)
    missing = [p.name for p in images if name_key(p) not in by_key]
    if missing:
        raise UserError(f"{len(missing)} image(s) have no mask of the same name in '{Path(masks).name}' "
                        f"({', '.join(missing[:3])})", "name each mask like its image (a.tif -> a.tif or "
                        "a_labels.tif, as segment writes them)")
    return [by_key[name_key(p)] for p in images]


def classify_files_job(paths: Sequence[str | Path], masks: str | Path, model: str | Path | ObjectClassifier,
                       outdir: str | Path, token: CancelToken = NEVER, device: str | torch.device = "auto") -> Job:
    """Classify many image files in turn, their masks found in folder ``masks``; returns the
    :class:`ClassifiedFile` list. A cancel keeps the files already written."""
    files = tiff_files(paths)
    mask_paths = mask_files_for(files, masks)
    classifier = as_classifier(model, device)
    clock = ProgressClock(len(files) * 1000, "classifying")
    done: list[ClassifiedFile] = []
    for k, (path, mask) in enumerate(zip(files, mask_paths)):
        token.check()
        out = yield from relay(classify_file_job(path, mask, classifier, outdir, token), lambda ev, k=k, p=path:
                               clock.tick(k * 1000 + int(ev.fraction * 1000), f"file {k + 1}/{len(files)} ({p.name})"))
        done.append(out)
        yield clock.tick((k + 1) * 1000, f"{len(done)} of {len(files)} file(s) written")
    return done
