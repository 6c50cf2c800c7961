"""How well a classifier does on labelled objects it did not learn from: accuracy and confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Assessment:
    """``confusion[i, j]``: held-out objects of class ``classes[i]`` predicted as ``classes[j]``.

    ``how`` says which objects were held out (a validation split, or every
    labelled object once in a cross-validation).
    """

    classes: tuple[str, ...]
    confusion: np.ndarray
    how: str

    @property
    def n(self) -> int:
        """Held-out objects scored."""
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        """Share of held-out objects given their own class."""
        return float(np.trace(self.confusion) / max(self.n, 1))

    @property
    def balanced_accuracy(self) -> float:
        """Mean over classes (with held-out objects) of the share given their own class."""
        totals = self.confusion.sum(axis=1)
        seen = totals > 0
        return float(np.mean(np.diag(self.confusion)[seen] / totals[seen])) if seen.any() else 0.0

    def summary(self) -> str:
        """One line: accuracy, balanced accuracy, and over what."""
        return (f"accuracy {self.accuracy:.3f} (balanced {self.balanced_accuracy:.3f}) on {self.n} held-out "
                f"objects, {self.how}")

    def to_dict(self) -> dict[str, Any]:
        """For a config file."""
        return {"classes": list(self.classes), "confusion": self.confusion.astype(int).tolist(), "how": self.how,
                "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Assessment:
        """Back from :meth:`to_dict`."""
        return cls(tuple(d["classes"]), np.asarray(d["confusion"], np.int64), str(d.get("how", "")))


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], n_classes: int) -> np.ndarray:
    """``(K, K)`` counts of (true class, predicted class) index pairs."""
    truth, predicted = np.asarray(truth, np.int64), np.asarray(predicted, np.int64)
    return np.bincount(truth * n_classes + predicted, minlength=n_classes**2).reshape(n_classes, n_classes)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out indices: about ``fraction`` of each class held out, one at least where a class
    has two or more examples (a class of one stays in training)."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for k in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == k))
        n_held = 0 if len(idx) < 2 else min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        held.append(idx[:n_held])
        train.append(idx[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> list[np.ndarray]:
    """``n_folds`` disjoint index sets covering every example, each class dealt round-robin over them."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    start = 0
    for k in np.unique(y):
        for i, idx in enumerate(rng.permutation(np.flatnonzero(y == k))):
            folds[(start + i) % n_folds].append(int(idx))
        start += int(np.sum(y == k))  # the next class starts where this one ended: folds stay even
    return [np.sort(np.asarray(f, np.int64)) for f in folds if f]
