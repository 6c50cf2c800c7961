"""The deep classifier: a ResNet-18 on each object's crop, its predictions and its Grad-CAM.

Prediction crops objects a batch at a time (:data:`PREDICT_BATCH`), so memory
stays flat however many objects there are, and checks the cancel token
between batches. :meth:`DeepClassifier.grad_cam` shows which part of an
object's crop drove its class (Grad-CAM on the last-but-one ResNet stage,
whose 4x4 cells on a 64-pixel crop are twice as fine as the last stage's),
placed back into image pixels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.assessment import Assessment
from napari_dlmicro.core.models.classifier.base import ObjectClassifier
from napari_dlmicro.core.models.classifier.classes import ClassSpec
from napari_dlmicro.core.models.classifier.crops import CropGeometry, crop_batch, to_image
from napari_dlmicro.core.models.classifier.network import ObjectNet
from napari_dlmicro.core.models.classifier.objects import Objects
from napari_dlmicro.core.models.classifier.prediction import Prediction
from napari_dlmicro.core.models.folder import WEIGHTS, load_safetensors, save_model_folder
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, ProgressClock

PREDICT_BATCH = 128
CAM_LAYER = "layer3"


@dataclass(frozen=True)
class Saliency:
    """Where in an object's surroundings the network looked for its class: ``data`` (0..1) at ``region``.

    ``region`` (a (y, x) slice pair) places ``data`` into image pixels; a dock
    shows it as an image layer translated to ``region``'s start.
    """

    label: int
    class_name: str
    data: np.ndarray
    region: tuple[slice, slice]


def deep_objects_check(obj: Objects) -> None:
    """The deep classifier takes 2D objects."""
    if obj.ndim != 2:
        raise UserError(f"the deep classifier crops 2D objects; the mask of {obj.name} is {obj.ndim}D",
                        "use the fast classifier for 3D objects")


class DeepClassifier(ObjectClassifier):
    """A trained :class:`ObjectNet` with its classes and crop geometry."""

    kind = "deep"

    def __init__(self, net: ObjectNet, classes: Sequence[ClassSpec], geometry: CropGeometry,
                 name: str = "classifier", history: list | None = None, assessment: Assessment | None = None,
                 meta: dict | None = None, device: torch.device | None = None) -> None:
        self.net, self.classes, self.geometry = net, tuple(classes), geometry
        self.n_channels, self.ndim, self.name = net.n_channels, 2, name
        self.history, self.assessment, self.meta = list(history or []), assessment, dict(meta or {})
        self.device = device or torch.device("cpu")
        self.net.to(self.device).eval()

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities of a batch of crops (n, C + 1, S, S)."""
        self.net.eval()
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(np.ascontiguousarray(crops)).to(self.device))
            return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)

    def predict_job(self, image, labels, token: CancelToken = NEVER, objects: Objects | None = None) -> Job:
        """Crop and classify every object, a batch at a time; returns a :class:`Prediction`."""
        obj = objects if objects is not None else self.objects(image, labels)
        deep_objects_check(obj)
        n = len(obj.ids)
        clock = ProgressClock(n, "classifying objects")
        out = np.zeros((n, len(self.classes)))
        for start in range(0, n, PREDICT_BATCH):
            token.check()
            rows = np.arange(start, min(start + PREDICT_BATCH, n))
            out[rows] = self.probabilities(crop_batch(obj, rows, self.geometry))
            yield clock.tick(rows[-1] + 1, f"{rows[-1] + 1} of {n} objects")
        return Prediction(obj.ids, out, self.classes)

    def grad_cam(self, image, labels, label: int, class_name: str | None = None,
                 objects: Objects | None = None) -> Saliency:
        """Grad-CAM of object ``label`` for ``class_name`` (default: its predicted class), in image pixels."""
        obj = objects if objects is not None else self.objects(image, labels)
        deep_objects_check(obj)
        row = int(obj.index([label])[0])
        crop = torch.from_numpy(crop_batch(obj, np.array([row]), self.geometry)).to(self.device)
        layer = getattr(self.net.resnet, CAM_LAYER)
        seen: dict[str, torch.Tensor] = {}

        def keep(_module, _inputs, output: torch.Tensor) -> None:
            output.retain_grad()
            seen["act"] = output

        handle = layer.register_forward_hook(keep)
        self.net.eval()
        try:
            with torch.enable_grad():
                logits = self.net(crop)
                k = int(torch.argmax(logits[0])) if class_name is None else self._class_index(class_name)
                self.net.zero_grad(set_to_none=True)
                logits[0, k].backward()
        finally:
            handle.remove()
        act, grad = seen["act"].detach(), seen["act"].grad.detach()
        cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=(self.geometry.size,) * 2, mode="bilinear", align_corners=False)[0, 0]
        cam = cam.cpu().numpy()
        cam = cam / cam.max() if cam.max() > 0 else cam
        data, region = to_image(cam, obj, row, self.geometry)
        return Saliency(int(label), self.classes[k].name, np.clip(data, 0, 1), region)

    def _class_index(self, name: str) -> int:
        if name not in self.class_names:
            raise UserError(f"{name!r} is not a class of '{self.name}'", f"use one of {', '.join(self.class_names)}")
        return self.class_names.index(name)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "features": {"input": "crop", "crop": self.geometry.size,
                                                 "context": self.geometry.context, "side": self.geometry.side,
                                                 "channels": self.n_channels + 1, "network": "resnet18"},
                "weights": WEIGHTS}

    def save(self, folder: str | Path) -> Path:
        """``config.json`` and ``weights.safetensors`` into ``folder``, atomically."""
        return save_model_folder(Path(folder), self.config(), self.net)

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any], classes: tuple[ClassSpec, ...],
                    device: torch.device | None = None) -> DeepClassifier:
        """Load a deep classifier saved by :meth:`save`."""
        features = config.get("features") or {}
        try:
            side = features.get("side")
            geometry = CropGeometry(int(features["crop"]), float(features["context"]),
                                    None if side is None else float(side))
            net = ObjectNet(int(config["n_channels"]), len(classes))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"config.json of '{folder.name}' does not describe a deep classifier",
                            "re-train the classifier") from None
        load_safetensors(net, folder)
        assessment = Assessment.from_dict(config["assessment"]) if config.get("assessment") else None
        meta = {k: config[k] for k in ("training", "data", "description", "pretrained") if k in config}
        return cls(net, classes, geometry, str(config.get("name", folder.name)), config.get("history"), assessment,
                   meta, device)
