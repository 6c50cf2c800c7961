"""Training a classifier: the fast one in one fit, the deep one on the one training loop.

*Fast*: every image's objects are measured, the labelled ones scored by a
cross-validation (each held out once), then the forest is fitted on them
all. *Deep*: every labelled object is cropped, about ``val_fraction`` of
each class held out, and a ResNet-18 (from ImageNet weights where they can
be had) fine-tuned with class-balanced batches of augmented crops; each
validation scores accuracy and loss on the held-out crops, the best weights
are kept (stop keeps them too), and the held-out confusion matrix of the
kept weights is saved with the model.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_dlmicro.core.data.augment import augment_pair, parse_augment
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier import network
from napari_dlmicro.core.models.classifier.assessment import Assessment, confusion_matrix, stratified_split
from napari_dlmicro.core.models.classifier.classes import class_names
from napari_dlmicro.core.models.classifier.crops import CropGeometry, crop_batch, fixed_side
from napari_dlmicro.core.models.classifier.data import ClassifierData
from napari_dlmicro.core.models.classifier.deep import DeepClassifier, deep_objects_check
from napari_dlmicro.core.models.classifier.fast import cross_validate, default_folds, fit_matrix, training_matrix
from napari_dlmicro.core.models.classifier.features import features_job
from napari_dlmicro.core.models.classifier.labelled import labelled_rows
from napari_dlmicro.core.models.classifier.network import ObjectNet, WeightsSource
from napari_dlmicro.core.models.classifier.objects import Objects, prepare
from napari_dlmicro.core.models.classifier.settings import ClassifierTraining
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, Level, Metric, Metrics, Notice, ProgressClock, relay
from napari_dlmicro.core.runtime.threads import ThreadTuner, set_cpu_threads
from napari_dlmicro.core.training.budget import Budget
from napari_dlmicro.core.training.fit import Trainer, fit
from napari_dlmicro.core.training.result import StopReason, TrainResult

BALANCED_ACCURACY = "balanced_accuracy"
EVAL_BATCH = 128


class DeepTrainer(Trainer):
    """A step is one class-balanced batch of augmented crops; an epoch one pass's worth of training crops."""

    kind = "classifier"
    cancel_in_backward = False  # torchvision's ResNet has in-place ReLUs

    def __init__(self, x: np.ndarray, y: np.ndarray, vx: np.ndarray, vy: np.ndarray, data: ClassifierData,
                 s: ClassifierTraining, device: torch.device, name: str, geometry: CropGeometry,
                 start: dict | None, meta: dict) -> None:
        self.x, self.y, self.vx, self.vy = x, y, vx, vy
        self.classes, self.s, self.device, self.name = data.classes, s, device, name
        self.geometry, self.meta = geometry, meta
        torch.manual_seed(s.seed)
        self.net = ObjectNet(x.shape[1] - 1, len(self.classes))
        if start is not None:
            self.net.start_from(start)
        self.net.to(device)
        self.kinds = parse_augment(s.augment)
        self.rng = np.random.default_rng(s.seed)
        self.lr = s.lr
        self.steps_per_epoch = max(1, -(-len(y) // s.batch))
        self.validate_every_s = s.validate_every_s
        self.by_class = [np.flatnonzero(y == k) for k in range(len(self.classes))]
        self.assessment: Assessment | None = None
        self.tuner = None
        if device.type == "cpu":  # on a shared CPU, fewer threads can be faster: measured as training goes
            tuner = ThreadTuner()
            self.tuner = ThreadTuner(tuple(n for n in tuner.candidates if n <= s.threads) or (1,)) if s.threads \
                else tuner

    def begin(self) -> None:
        set_cpu_threads(self.s.threads)
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.s.lr, weight_decay=1e-4)
        self.net.train()

    def end(self) -> None:
        self.net.eval()
        if self.s.threads:
            set_cpu_threads()

    def step(self, fraction: float) -> float:
        if self.tuner is not None:
            self.tuner.before_step()
        loss = self._step()
        if self.tuner is not None:
            self.tuner.after_step()
        return loss

    def _step(self) -> float:
        # class-balanced: a class first, then one of its crops, so a class of few clicks is not drowned out
        picks = [self.rng.choice(self.by_class[k]) for k in self.rng.integers(len(self.by_class), size=self.s.batch)]
        batch = np.empty((len(picks),) + self.x.shape[1:], np.float32)
        for n, i in enumerate(picks):
            image, mask = augment_pair(self.rng, np.moveaxis(self.x[i, :-1], 0, -1), self.x[i, -1] > 0.5, self.kinds)
            batch[n, :-1] = np.moveaxis(image, -1, 0)
            batch[n, -1] = mask
        logits = self.net(torch.from_numpy(batch).to(self.device))
        loss = F.cross_entropy(logits, torch.from_numpy(self.y[picks]).to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def _evaluate(self, token: CancelToken) -> tuple[float, np.ndarray]:
        self.net.eval()
        losses, predicted = [], []
        try:
            with torch.inference_mode():
                for start in range(0, len(self.vy), EVAL_BATCH):
                    token.check()
                    xb = torch.from_numpy(self.vx[start:start + EVAL_BATCH]).to(self.device)
                    yb = torch.from_numpy(self.vy[start:start + EVAL_BATCH]).to(self.device)
                    logits = self.net(xb)
                    losses.append(float(F.cross_entropy(logits, yb, reduction="sum")))
                    predicted.append(logits.argmax(dim=1).cpu().numpy())
        finally:
            self.net.train()
        return sum(losses) / max(len(self.vy), 1), np.concatenate(predicted)

    def validate(self, token: CancelToken) -> dict[str, float]:
        if not len(self.vy):
            return {}
        loss, predicted = self._evaluate(token)
        a = Assessment(class_names(self.classes), confusion_matrix(self.vy, predicted, len(self.classes)), "")
        return {Metric.VAL_LOSS: loss, Metric.ACCURACY: a.accuracy, BALANCED_ACCURACY: a.balanced_accuracy}

    def rank(self, row: dict[str, float]) -> tuple:
        if BALANCED_ACCURACY not in row:
            return (row[Metric.STEP],)  # nothing held out: the newest weights
        return (row[BALANCED_ACCURACY], -row[Metric.VAL_LOSS])

    def weights(self) -> dict:
        return self.net.state_dict()

    def load_weights(self, state: dict) -> None:
        self.net.load_state_dict(state)

    def finish(self, token: CancelToken, history: list[dict[str, float]]) -> Job:
        """The held-out confusion matrix of the kept weights."""
        if not len(self.vy):
            return {}
        _, predicted = self._evaluate(token)
        self.assessment = Assessment(class_names(self.classes),
                                     confusion_matrix(self.vy, predicted, len(self.classes)),
                                     f"a validation split of {len(self.vy)} labelled objects")
        yield Notice(f"held out: {self.assessment.summary()}")
        return {Metric.ACCURACY: self.assessment.accuracy, BALANCED_ACCURACY: self.assessment.balanced_accuracy}

    def save(self, folder: Path, history, best, info) -> None:
        self._classifier(history, info).save(folder)

    def model(self) -> DeepClassifier:
        return self._classifier([], {})

    def _classifier(self, history, info) -> DeepClassifier:
        meta = {**self.meta, "training": {**asdict(self.s), **info}}
        return DeepClassifier(self.net, self.classes, self.geometry, self.name, history, self.assessment, meta,
                              self.device)


def _objects(data: ClassifierData) -> list[Objects]:
    return [prepare(i.image, i.labels, i.name) for i in data.images]


def _check_channels(objects: list[Objects]) -> None:
    channels = {o.n_channels for o in objects}
    if len(channels) > 1:
        raise UserError(f"the images have different numbers of channels ({', '.join(map(str, sorted(channels)))})",
                        "train on images of one kind")
    dims = {o.ndim for o in objects}
    if len(dims) > 1:
        raise UserError("the masks mix 2D and 3D objects", "train on objects of one dimensionality")


def train_fast(data: ClassifierData, s: ClassifierTraining, token: CancelToken = NEVER, name: str = "classifier",
               save_to: str | Path | None = None) -> Job:
    """The fast classifier on ``data``: measured, cross-validated, fitted on every labelled object, saved."""
    budget = Budget(n_steps=1)
    objects = _objects(data)
    _check_channels(objects)
    clock = ProgressClock(len(objects) * 100 + 10, "measuring objects")
    features = []
    for k, obj in enumerate(objects):
        token.check()
        f = yield from relay(features_job(None, None, token, objects=obj),
                             lambda ev, k=k, o=obj: clock.tick(k * 100 + int(ev.fraction * 100),
                                                               f"{o.name}: {ev.message}"))
        features.append(f)
    X, y, notes = training_matrix(features, [i.table for i in data.images], data.classes,
                                  [i.name for i in data.images])
    for note in notes:
        yield Notice(note)
    yield clock.tick(len(objects) * 100, "cross-validating")
    threads = s.threads or 1
    assessment = cross_validate(X, y, data.classes, default_folds(s.val_fraction), s.trees, s.seed, threads, token)
    row: dict[str, float] = {Metric.STEP: 1.0, Metric.SECONDS: budget.elapsed()}
    if assessment is None:
        yield Notice("no held-out score: a class has a single labelled object", Level.WARNING)
    else:
        row.update({Metric.ACCURACY: assessment.accuracy, BALANCED_ACCURACY: assessment.balanced_accuracy})
        yield Notice(f"held out: {assessment.summary()}")
        yield Metrics(1, row)
    token.check()
    model = fit_matrix(X, y, data.classes, features[0], s.trees, s.seed, threads, name)
    model.assessment, model.history = assessment, [row]
    model.meta = {**data.provenance(), "training": {**asdict(s), "labelled": int(len(y)), "steps": 1,
                                                    "seconds": budget.elapsed(), "stopped": "budget"}}
    folder = model.save(save_to) if save_to is not None else None
    yield clock.tick(clock.total, "done")
    return TrainResult("classifier", model, folder, [row], dict(row), StopReason.BUDGET, 1, budget.elapsed())


def labelled_crops(objects: list[Objects], data: ClassifierData, geometry: CropGeometry, token: CancelToken
                   ) -> Job:
    """Crops (n, C + 1, S, S) and class indices of every usable labelled object; notes yielded as notices."""
    labelled = labelled_rows([(o.name, o.ids, o.sizes, o.touches_border()) for o in objects],
                             [i.table for i in data.images], data.classes)
    for note in labelled.notes:
        yield Notice(note)
    total = int(sum(len(r) for r in labelled.rows))
    clock = ProgressClock(total, "cropping labelled objects")
    crops, done = [], 0
    for obj, rows in zip(objects, labelled.rows):
        for start in range(0, len(rows), EVAL_BATCH):
            token.check()
            crops.append(crop_batch(obj, rows[start:start + EVAL_BATCH], geometry))
            done += len(crops[-1])
            yield clock.tick(done)
    return np.concatenate(crops), labelled.y


def train_deep(data: ClassifierData, s: ClassifierTraining, token: CancelToken = NEVER,
               device: torch.device | None = None, name: str = "classifier", save_to: str | Path | None = None,
               weights: WeightsSource | None = None) -> Job:
    """The deep classifier on ``data``; returns a :class:`TrainResult`.

    ``weights`` gives the ImageNet start (default: :func:`.network.imagenet_weights`,
    or none when ``s.pretrained`` is off).
    """
    objects = _objects(data)
    _check_channels(objects)
    for obj in objects:
        deep_objects_check(obj)
    geometry = CropGeometry(s.crop, s.context, fixed_side(objects, s.context))
    x, y = yield from labelled_crops(objects, data, geometry, token)
    train, held = stratified_split(y, s.val_fraction, s.seed)
    if not len(held):
        yield Notice("no labelled object could be held out for validation (every class has one): the last "
                     "weights are kept", Level.WARNING)
    source = weights or (network.imagenet_weights if s.pretrained else network.no_weights)
    start, how = source()
    yield Notice(how, Level.INFO if start is not None or not s.pretrained else Level.WARNING)
    meta = {**data.provenance(), "pretrained": "imagenet" if start is not None else "none"}
    trainer = DeepTrainer(x[train], y[train], x[held], y[held], data, s, device or torch.device("cpu"), name,
                          geometry, start, meta)
    return (yield from fit(trainer, s.budget(trainer.steps_per_epoch), token, save_to))


def train_kind(data: ClassifierData, settings: ClassifierTraining, token: CancelToken = NEVER, *,
               device: str = "auto", name: str = "classifier", save_to: str | Path | None = None,
               init: str | None = None, preview: Any = None) -> Job:
    """The registry's entry: the fast or deep classifier (``settings.classifier``) on labelled images."""
    if init:
        raise UserError("a classifier cannot continue from another model yet", "train a new one")
    if not isinstance(data, ClassifierData):
        raise UserError("a classifier trains on images, masks and class tables",
                        "give --images DIR --masks DIR --classes DIR")
    if settings.classifier == "fast":
        return (yield from train_fast(data, settings, token, name, save_to))
    return (yield from train_deep(data, settings, token, resolve_device(device), name, save_to))
