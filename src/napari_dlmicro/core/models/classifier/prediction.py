"""What a classifier says about every object: class probabilities, and the tables and maps made from them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_dlmicro.core.models.classifier.classes import ClassSpec, class_names
from napari_dlmicro.core.models.classifier.uncertainty import DEFAULT_METHOD, suggest


@dataclass(frozen=True)
class Prediction:
    """``probabilities[i, k]``: how likely object ``ids[i]`` is of class ``classes[k]``."""

    ids: np.ndarray  # (n,) int64, sorted
    probabilities: np.ndarray  # (n, K) float64, rows sum to 1
    classes: tuple[ClassSpec, ...]

    @property
    def index(self) -> np.ndarray:
        """Each object's class as an index into ``classes`` (0-based)."""
        return np.argmax(self.probabilities, axis=1) if len(self.ids) else np.zeros(0, np.int64)

    @property
    def names(self) -> np.ndarray:
        """Each object's class name."""
        return np.asarray(class_names(self.classes), dtype=object)[self.index]

    @property
    def probability(self) -> np.ndarray:
        """Each object's probability of its class."""
        return self.probabilities.max(axis=1) if len(self.ids) else np.zeros(0)

    def table(self) -> dict[str, np.ndarray]:
        """``label``, ``class``, ``probability``: the CSV a classification writes, one row per object."""
        return {"label": self.ids, "class": self.names, "probability": np.round(self.probability, 6)}

    def features_table(self) -> dict[str, np.ndarray]:
        """:meth:`table` and one ``p_<class>`` column per class (a napari Labels layer's ``features``)."""
        columns = {f"p_{c.name}": self.probabilities[:, k] for k, c in enumerate(self.classes)}
        return {**self.table(), **columns}

    def class_map(self, labels: np.ndarray) -> np.ndarray:
        """``labels`` with each object's pixels set to its class index, 1-based (0: background, unclassified)."""
        labels = np.asarray(labels)
        lut = np.zeros(max(int(labels.max()) if labels.size else 0, int(self.ids.max()) if len(self.ids) else 0) + 1,
                       np.uint8 if len(self.classes) < 255 else np.uint16)
        lut[self.ids] = self.index + 1
        return lut[labels]

    def counts(self) -> dict[str, int]:
        """Objects per class, in class order."""
        per = np.bincount(self.index, minlength=len(self.classes))
        return {c.name: int(n) for c, n in zip(self.classes, per)}

    def colours(self) -> dict[int, str]:
        """``{label id: class colour}`` (for a label colour map that paints each object in its class colour)."""
        colours = [c.colour for c in self.classes]
        return {int(i): colours[k] for i, k in zip(self.ids, self.index)}

    def suggest(self, n: int, exclude=(), method: str = DEFAULT_METHOD) -> np.ndarray:
        """The ``n`` objects the classifier is least sure of, not among ``exclude`` (:func:`.uncertainty.suggest`)."""
        return suggest(self.ids, self.probabilities, n, exclude, method)
