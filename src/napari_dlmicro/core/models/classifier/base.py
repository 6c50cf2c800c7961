"""What every object classifier offers: its classes, what images it takes, prediction, and its folder."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.assessment import Assessment
from napari_dlmicro.core.models.classifier.classes import ClassSpec, class_names
from napari_dlmicro.core.models.classifier.objects import Objects, prepare
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, run_to_end


class ObjectClassifier(ABC):
    """A trained classifier: ``classes`` in its order, for ``ndim``-D objects in ``n_channels``-channel images."""

    kind: str  # "fast" | "deep"
    name: str
    classes: tuple[ClassSpec, ...]
    n_channels: int
    ndim: int
    history: list[dict[str, float]]
    assessment: Assessment | None
    meta: dict[str, Any]

    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names, in the classifier's order."""
        return class_names(self.classes)

    def objects(self, image, labels, name: str = "the image") -> Objects:
        """``image`` and ``labels`` checked and prepared, and checked against what this classifier takes."""
        obj = prepare(image, labels, name)
        if obj.n_channels != self.n_channels:
            raise UserError(f"the classifier '{self.name}' was trained on {self.n_channels}-channel images; "
                            f"{obj.name} has {obj.n_channels} channel(s)",
                            f"classify images of {self.n_channels} channel(s), or train a classifier for these")
        if obj.ndim != self.ndim:
            raise UserError(f"the classifier '{self.name}' was trained on {self.ndim}D objects; the mask of "
                            f"{obj.name} is {obj.ndim}D", f"classify {self.ndim}D objects, or train a new classifier")
        return obj

    @abstractmethod
    def predict_job(self, image, labels, token: CancelToken = NEVER, objects: Objects | None = None) -> Job:
        """Classify every object of ``labels``; yields progress, returns a :class:`.prediction.Prediction`."""

    def predict(self, image, labels, token: CancelToken = NEVER):
        """Headless :meth:`predict_job`."""
        return run_to_end(self.predict_job(image, labels, token))

    @abstractmethod
    def save(self, folder: str | Path) -> Path:
        """Write the classifier's model folder (atomically)."""

    def config(self) -> dict[str, Any]:
        """What config.json holds for every classifier (the kind adds its own entries)."""
        return {"kind": "classifier", "classifier": self.kind, "name": self.name,
                "classes": [c.to_dict() for c in self.classes], "n_channels": self.n_channels, "ndim": self.ndim,
                "normalization": {"kind": "percentile", "low": 1.0, "high": 99.8, "per": "channel"},
                "history": self.history, "assessment": self.assessment.to_dict() if self.assessment else None,
                **self.meta}
