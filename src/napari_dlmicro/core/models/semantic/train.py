"""Training a semantic U-Net on class maps, on the one training loop (:mod:`...training.fit`).

Cross-entropy on random augmented patches; every epoch the validation images
are scored (loss, pixel accuracy, mean IoU over the foreground classes) and
the best weights by mean IoU are kept.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_dlmicro.core.data.augment import augment_pair, parse_augment, random_crop
from napari_dlmicro.core.data.normalize import normalized
from napari_dlmicro.core.data.tiling import pad_to_multiple
from napari_dlmicro.core.data.training_sets import provenance, training_split
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.folder import save_model_folder
from napari_dlmicro.core.models.semantic.network import SemanticModel, SemanticNet, class_scores
from napari_dlmicro.core.models.semantic.settings import SemanticTraining
from napari_dlmicro.core.nets.unet import UNetConfig
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, call_abandoning
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, Metric
from napari_dlmicro.core.runtime.threads import set_cpu_threads
from napari_dlmicro.core.training.budget import Budget
from napari_dlmicro.core.training.fit import Trainer, fit

MAX_CLASSES = 64


class SemanticTrainer(Trainer):
    """A U-Net with a K-class head: a step is one batch of augmented patches."""

    kind = "semantic"

    def __init__(self, train: Sequence, val: Sequence, s: SemanticTraining, device: torch.device, name: str,
                 meta: dict | None = None) -> None:
        ndim = train[0].mask.ndim
        self.s, self.device, self.name, self.meta = s, device, name, meta or {}
        self.n_classes = int(max(max(int(p.mask.max()) for p in list(train) + list(val)) + 1, 2))
        if self.n_classes > MAX_CLASSES:
            raise UserError(f"the masks hold {self.n_classes - 1} classes: these look like object ids, not classes",
                            "train StarDist or Cellpose for objects; semantic masks hold a few class values")
        self.x = [_channels_last(normalized(p.image, ndim), ndim) for p in train]
        self.vx = [_channels_last(normalized(p.image, ndim), ndim) for p in val]
        self.y, self.vy = [p.mask.astype(np.int64) for p in train], [p.mask.astype(np.int64) for p in val]
        self.unet = UNetConfig(ndim=ndim, in_channels=self.x[0].shape[-1], depth=s.depth, filters=s.filters,
                               pool=(2,) * ndim)
        self.patch = (s.patch,) * ndim
        if any(min(m.shape[d] for m in self.y) < s.patch for d in range(ndim)):
            raise UserError(f"patch size {s.patch} is larger than the smallest training image",
                            "choose a smaller patch")
        torch.manual_seed(s.seed)
        self.net = SemanticNet(self.unet, self.n_classes).to(device)
        self.kinds = parse_augment(s.augment)
        self.rng = np.random.default_rng(s.seed)
        self.lr = s.lr
        self.steps_per_epoch = max(10, -(-sum(m.size for m in self.y) // (s.batch * int(np.prod(self.patch)))))

    def begin(self) -> None:
        set_cpu_threads(self.s.threads)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.s.lr)
        self.net.train()

    def end(self) -> None:
        self.net.eval()
        if self.s.threads:
            set_cpu_threads()

    def step(self, fraction: float) -> float:
        xb, yb = [], []
        for _ in range(self.s.batch):
            i = int(self.rng.integers(len(self.x)))
            im, lab = augment_pair(self.rng, *random_crop(self.rng, self.x[i], self.y[i], self.patch, kinds=self.kinds),
                                   self.kinds)
            xb.append(np.moveaxis(im, -1, 0))
            yb.append(lab)
        logits = self.net(torch.from_numpy(np.stack(xb)).to(self.device))
        loss = F.cross_entropy(logits, torch.from_numpy(np.stack(yb)).to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def validate(self, token: CancelToken) -> dict[str, float]:
        if not self.vx:
            return {}
        preds, losses = [], []
        self.net.eval()
        with torch.inference_mode():
            for im, lab in zip(self.vx, self.vy):
                token.check()
                padded = pad_to_multiple(im, self.unet.div_by)
                t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(padded, -1, 0)[None])).to(self.device)
                logits = self.net(t)[(slice(None), slice(None)) + tuple(slice(0, n) for n in lab.shape)]
                losses.append(float(F.cross_entropy(logits, torch.from_numpy(lab[None]).to(self.device))))
                preds.append(logits[0].argmax(0).cpu().numpy())
        self.net.train()
        scores = class_scores(np.concatenate([p.ravel() for p in preds]),
                              np.concatenate([v.ravel() for v in self.vy]), self.n_classes)
        return {Metric.VAL_LOSS: float(np.mean(losses)), **scores}

    def rank(self, row: dict[str, float]) -> tuple:
        if Metric.MEAN_IOU not in row:
            return (row[Metric.STEP],)
        return (row[Metric.MEAN_IOU], -row[Metric.VAL_LOSS])

    def weights(self) -> dict:
        return self.net.state_dict()

    def load_weights(self, state: dict) -> None:
        self.net.load_state_dict(state)

    def save(self, folder: Path, history, best, info) -> None:
        save_model_folder(folder, {"kind": "semantic", "name": self.name, "unet": self.unet.to_dict(),
                                   "n_classes": self.n_classes, "history": history, "axes": "YXC",
                                   "training": {**asdict(self.s), **info}, **self.meta}, self.net)

    def model(self) -> SemanticModel:
        return SemanticModel(self.net, self.name)


def _channels_last(image: np.ndarray, ndim: int) -> np.ndarray:
    return image[..., None] if image.ndim == ndim else image


def train_semantic(train: Sequence, val: Sequence, settings: SemanticTraining = SemanticTraining(),
                   token: CancelToken = NEVER, device: str | torch.device = "auto", name: str = "semantic",
                   save_to: str | Path | None = None, meta: dict | None = None) -> Job:
    """Train a U-Net on class maps (training and validation :class:`Pair` lists); returns a :class:`TrainResult`."""
    device = device if isinstance(device, torch.device) else resolve_device(device)
    trainer = call_abandoning(SemanticTrainer, train, val, settings, device, name, meta, token=token)
    budget = Budget(minutes=settings.minutes, epochs=settings.epochs, steps_per_epoch=trainer.steps_per_epoch)
    return (yield from fit(trainer, budget, token, save_to))


def train_kind(pairs: Sequence, settings: SemanticTraining, token: CancelToken = NEVER, *, device: str = "auto",
               name: str = "semantic", save_to: str | Path | None = None, init: str | None = None,
               preview=None) -> Job:
    """A semantic U-Net from a training set of class maps (:class:`Pair` list); ``init`` is not supported."""
    if init:
        raise UserError("a semantic U-Net cannot continue from another model yet", "train a new one")
    train, val, _ = training_split(pairs, settings.val_fraction, settings.seed, objects=False)
    return (yield from train_semantic(train, val, settings, token, device, name, save_to, provenance(pairs)))
