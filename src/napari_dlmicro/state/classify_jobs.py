"""The Classification dock's jobs, on plain arrays: measure, refit and repredict, train deep, apply, explain, save.

Each is a generator job (run by :mod:`napari_dlmicro.workers` off napari's
thread) that returns everything the dock then only has to show: the class
map and the part of it that changed since the last one shown (the dock
redraws only that), and the table for the Labels layer's ``features`` built
here, not on the GUI thread.

:func:`refresh_job` is what a click triggers: when the labels differ from
those the objects were measured on (a new segmentation, objects painted or
erased), the clicks are carried over to the new objects
(:func:`...classifier.table.carry_over`) and the objects measured again;
then, once every class has a labelled object, the fast classifier is
refitted and every object predicted.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.classify import as_classifier, train_classifier_job
from napari_dlmicro.core.models.classifier.assessment import Assessment
from napari_dlmicro.core.models.classifier.base import ObjectClassifier
from napari_dlmicro.core.models.classifier.classes import ClassSpec
from napari_dlmicro.core.models.classifier.deep import DeepClassifier
from napari_dlmicro.core.models.classifier.fast import FastClassifier, assess_fast, fit_and_predict, training_matrix
from napari_dlmicro.core.models.classifier.features import ObjectFeatures, features_job
from napari_dlmicro.core.models.classifier.prediction import Prediction
from napari_dlmicro.core.models.classifier.table import carry_over
from napari_dlmicro.core.models.store import notify_store_changed
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, Progress, ProgressClock, relay
from napari_dlmicro.state.classification import not_ready

Region = tuple[slice, ...]


@dataclass(frozen=True)
class Measured:
    """One segmentation's objects: the image and a private copy of the labels they were measured on."""

    image: np.ndarray
    labels: np.ndarray
    features: ObjectFeatures

    def matches(self, labels) -> bool:
        """True while ``labels`` are still the labels these objects were measured on."""
        labels = np.asarray(labels)
        return labels.shape == self.labels.shape and np.array_equal(labels, self.labels)


@dataclass
class Update:
    """A classification to show: per time point predictions, and the class map with what changed in it.

    ``class_map`` fills ``where`` of the class layer (``()``: all of it,
    ``(t,)``: time point t); only ``changed`` (a region of ``class_map``,
    None: nothing) needs redrawing.
    """

    model: ObjectClassifier
    predictions: dict[int | None, Prediction]
    class_map: np.ndarray
    where: tuple[int, ...]
    changed: Region | None
    features: pd.DataFrame
    version: int = -1  # which state of the clicks this was fitted on (the dock's counter)

    @property
    def prediction(self) -> Prediction:
        """The prediction of the time point clicked on (or the only one)."""
        key = self.where[0] if self.where else next(iter(self.predictions))
        return self.predictions.get(key, next(iter(self.predictions.values())))

    def counts(self) -> dict[str, int]:
        """Objects per class over every time point."""
        out: dict[str, int] = {}
        for p in self.predictions.values():
            for k, v in p.counts().items():
                out[k] = out.get(k, 0) + v
        return out

    def table(self) -> dict[str, np.ndarray]:
        """``label,class,probability`` per object (a ``frame`` column first with a time axis), for CSV."""
        if list(self.predictions) == [None]:
            return self.predictions[None].table()
        parts = [{"frame": np.full(len(p.ids), t), **p.table()} for t, p in self.predictions.items()]
        return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


@dataclass
class Refresh:
    """What a click's job found: the objects (measured again if the labels changed), the carried clicks."""

    measured: Measured
    table: dict[int, str] | None = None  # the clicks carried over to new labels (None: labels unchanged)
    notes: list[str] = field(default_factory=list)
    update: Update | None = None


@dataclass(frozen=True)
class Why:
    """Why an object got its class: an image over it (``data`` at ``region`` of the frame) and, for the
    fast classifier, the features that moved it most."""

    label: int
    class_name: str
    probability: float
    data: np.ndarray
    region: Region
    top: tuple[tuple[str, float], ...] = ()
    how: str = ""


def changed_region(old: np.ndarray | None, new: np.ndarray) -> Region | None:
    """The bounding box of the pixels where ``new`` differs from ``old`` (all of it without ``old``)."""
    if old is None or old.shape != new.shape:
        return tuple(slice(0, n) for n in new.shape)
    diff = old != new
    if not diff.any():
        return None
    region = []
    for axis in range(diff.ndim):
        hit = np.flatnonzero(diff.any(axis=tuple(a for a in range(diff.ndim) if a != axis)))
        region.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(region)


def features_frame(prediction: Prediction, features: ObjectFeatures | None = None,
                   existing: pd.DataFrame | None = None) -> pd.DataFrame:
    """The Labels layer's ``features``: ``index`` (the label napari looks up), ``label``, the measured features,
    ``class``, ``probability`` and ``p_<class>``; other columns already there (measurements) are kept."""
    columns: dict[str, Any] = {"index": prediction.ids}
    if features is not None and np.array_equal(features.ids, prediction.ids):
        columns.update(features.table())
    columns.update(prediction.features_table())
    frame = pd.DataFrame(columns)
    if existing is None or not len(existing) or "label" not in existing.columns:
        return frame
    kept = [c for c in existing.columns if c not in frame.columns and not str(c).startswith("p_")]
    if not kept:
        return frame
    extra = existing[["label"] + kept].drop_duplicates("label")
    return frame.merge(extra, on="label", how="left")


def predicted(model: ObjectClassifier, predictions: dict[int | None, Prediction], class_map: np.ndarray,
              where: tuple[int, ...], previous: np.ndarray | None, features: ObjectFeatures | None = None,
              existing: pd.DataFrame | None = None, version: int = -1) -> Update:
    """An :class:`Update` for predictions whose class map fills ``where``; diffed against ``previous``."""
    shown = next(iter(predictions.values())) if len(predictions) == 1 else None
    if shown is not None:
        table = features_frame(shown, features, existing)
    else:
        table = pd.concat([features_frame(p).assign(frame=t) for t, p in predictions.items()], ignore_index=True)
    return Update(model, predictions, class_map, where, changed_region(previous, class_map), table, version)


def measure_job(image, labels, token: CancelToken = NEVER) -> Job:
    """Measure every object of ``labels`` over ``image``; returns :class:`Measured` (with a copy of the labels)."""
    labels = np.array(labels, copy=True)
    image = np.asarray(image)
    features = yield from features_job(image, labels, token)
    return Measured(image, labels, features)


def refresh_job(measured: Measured | None, image, labels, table: Mapping[int, str], classes: Sequence[ClassSpec],
                settings: Mapping[str, Any], *, where: tuple[int, ...] = (), previous: np.ndarray | None = None,
                existing: pd.DataFrame | None = None, fit: bool = True, version: int = -1,
                token: CancelToken = NEVER) -> Job:
    """After a click: carry the clicks over and measure again if the labels changed, then refit and repredict.

    Returns a :class:`Refresh`; its ``update`` is None while some class has
    no labelled object (or ``fit`` is off).
    """
    labels = np.asarray(labels)
    out_table: dict[int, str] | None = None
    notes: list[str] = []
    if measured is None or not measured.matches(labels):
        if measured is not None and table:
            if measured.labels.shape != labels.shape:
                raise UserError(f"the clicks were made on objects of shape {measured.labels.shape}, these labels "
                                f"have shape {labels.shape}",
                                "pick the Labels layer of the image the clicks were made on (they are kept)")
            out_table, notes = carry_over(table, measured.labels, labels)
            table = out_table
        measured = yield from measure_job(image, labels, token)
        previous = None
    update = None
    names = [c.name for c in classes]
    if fit and not_ready(table, names) is None:
        yield Progress(0, 1, "fitting the classifier")
        model, prediction = fit_predict(measured.features, table, classes, settings, token)
        token.check()
        key = where[0] if where else None
        update = predicted(model, {key: prediction}, prediction.class_map(measured.labels), where, previous,
                           measured.features, existing, version)
        yield Progress(1, 1, "classified")
    return Refresh(measured, out_table, notes, update)


def fit_predict(features: ObjectFeatures, table: Mapping[int, str], classes: Sequence[ClassSpec],
                settings: Mapping[str, Any], token: CancelToken = NEVER) -> tuple[FastClassifier, Prediction]:
    """The fast classifier fitted on the clicks, and its prediction of every object; the fit runs where
    :func:`...runtime.offload.call` puts it (in a GUI: the helper process, off napari's global lock)."""
    X, y, _ = training_matrix([features], [table], classes)
    forest, probabilities = offload.call(fit_and_predict, X, y, features.values, settings.get("trees", 100),
                                         settings.get("seed", 0), token=token)
    model = FastClassifier(forest, features.names, classes, features.n_channels, features.ndim)
    return model, Prediction(features.ids, probabilities, tuple(classes))


def assess_job(measured: Measured, table: Mapping[int, str], classes: Sequence[ClassSpec],
               settings: Mapping[str, Any], token: CancelToken = NEVER) -> Job:
    """The fast classifier's held-out accuracy and confusion matrix on the clicks (None: too few)."""
    yield Progress(0, 1, "scoring on held-out clicks")
    return offload.call(assess_fast, measured.features, dict(table), tuple(classes),
                        settings.get("val_fraction", 0.2), settings.get("trees", 100), settings.get("seed", 0),
                        token=token)


def apply_job(model: str | Path | ObjectClassifier, image, labels, timed: bool, *,
              previous: np.ndarray | None = None, measured: Measured | None = None,
              existing: pd.DataFrame | None = None, token: CancelToken = NEVER) -> Job:
    """Classify every object of ``labels`` (every time point when ``timed``) with ``model``; an :class:`Update`
    of the whole class layer."""
    classifier = as_classifier(model)
    image, labels = np.asarray(image), np.asarray(labels)
    frames: list[int | None] = list(range(labels.shape[0])) if timed else [None]
    clock = ProgressClock(len(frames) * 1000, "classifying")
    predictions: dict[int | None, Prediction] = {}
    maps = []
    for k, t in enumerate(frames):
        token.check()
        img, lab = (image, labels) if t is None else (image[t], labels[t])
        if not lab.any():
            continue  # a time point without objects: nothing to classify there
        pred = yield from relay(classifier.predict_job(img, lab, token),
                                lambda ev, k=k: clock.tick(k * 1000 + int(ev.fraction * 1000), ev.message))
        predictions[t] = pred
        maps.append((t, pred.class_map(lab)))
    if not predictions:
        raise UserError("the Labels layer has no objects", "segment the image first")
    if timed:
        class_map = np.zeros(labels.shape, maps[0][1].dtype)
        for t, m in maps:
            class_map[t] = m
    else:
        class_map = maps[0][1]
    features = measured.features if measured is not None and not timed and measured.matches(labels) else None
    return predicted(classifier, predictions, class_map, (), previous, features, existing)


def deep_job(image, labels, table: Mapping[int, str], classes: Sequence[ClassSpec], args: Mapping[str, Any], *,
             where: tuple[int, ...] = (), previous: np.ndarray | None = None, existing: pd.DataFrame | None = None,
             token: CancelToken = NEVER) -> Job:
    """Train the deep classifier on the clicks (``args`` from the state's ``train_args``), then classify every
    object with the weights kept; returns ``(TrainResult, Update)``, the update None when no step was trained
    (a Stop before the first step: an untrained network's classes would mean nothing)."""
    result = yield from train_classifier_job(image, labels, dict(table), classes, token=token, **args)
    if result.steps == 0:
        return result, None
    model = result.model
    prediction = yield from model.predict_job(image, labels, token)
    key = where[0] if where else None
    return result, predicted(model, {key: prediction}, prediction.class_map(np.asarray(labels)), where, previous,
                             None, existing)


def why_job(model: ObjectClassifier, measured: Measured, label: int, token: CancelToken = NEVER) -> Job:
    """Why object ``label`` got its class: Grad-CAM (deep) or feature contributions over its mask (fast)."""
    yield Progress(0, 1, f"explaining object {label}")
    if isinstance(model, DeepClassifier):
        saliency = model.grad_cam(measured.image, measured.labels, int(label))
        token.check()
        return Why(int(label), saliency.class_name, float("nan"), saliency.data, saliency.region,
                   how="Grad-CAM: where the network looked for this class")
    if not isinstance(model, FastClassifier):
        raise UserError("this classifier cannot explain its classes", "train a fast or deep classifier")
    explanation = model.explain(measured.features, int(label))
    region, mask = _object_box(measured.labels, int(label))
    data = mask.astype(np.float32) * explanation.probability
    return Why(int(label), explanation.class_name, explanation.probability, data, region,
               tuple(explanation.top(10)), "feature contributions to the probability of this class")


def _object_box(labels: np.ndarray, label: int) -> tuple[Region, np.ndarray]:
    where = np.nonzero(labels == label)
    if not where[0].size:
        raise UserError(f"label {label} is not an object of the mask", "pick an object of this segmentation")
    region = tuple(slice(int(w.min()), int(w.max()) + 1) for w in where)
    return region, labels[region] == label


def save_job(model: ObjectClassifier, folder: Path, assessment: Assessment | None = None,
             provenance: Mapping[str, Any] | None = None, token: CancelToken = NEVER) -> Job:
    """Write ``model`` into the model store as ``folder`` (with its classes and held-out score); returns it."""
    yield Progress(0, 1, f"saving '{folder.name}'")
    model.name = folder.name
    if assessment is not None:
        model.assessment = assessment
    if provenance:
        model.meta = {**model.meta, **provenance}
    token.check()
    path = model.save(folder)
    notify_store_changed(path)
    yield Progress(1, 1, "saved")
    return path
