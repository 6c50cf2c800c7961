"""The fast classifier: a random forest on per-object features, refitted in a fraction of a second.

A dock refits it at every click (:func:`fit_fast` on the features measured
once per segmentation), predicts every object (:meth:`FastClassifier.predict_features`)
and asks it what to label next and why it called an object what it did
(:meth:`FastClassifier.explain`). :func:`cross_validate` scores it on labelled
objects it did not see.

A random forest rather than gradient boosting (benchmarks/classify.py, test
accuracy over five seeds): on the IHC nuclei 0.996-0.998 at 5 to 50 labels
per class against boosting's 0.958-0.990; on the nuclei sample's size
classes boosting did better at 5 and 10 per class (0.894 and 1.000 against
0.844 and 0.956), where one feature decides the class; both 1.000 at 20. The
forest's averaged trees also give the graded probabilities that "Suggest"
ranks by, and refit with repredict took 0.46-0.57 s for 1,000 to 10,000
objects on a busy 2-core CPU (boosting 0.08-0.19 s).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.assessment import Assessment, confusion_matrix, stratified_folds
from napari_dlmicro.core.models.classifier.base import ObjectClassifier
from napari_dlmicro.core.models.classifier.classes import ClassSpec
from napari_dlmicro.core.models.classifier.config import write_model_folder
from napari_dlmicro.core.models.classifier.features import ObjectFeatures, features_job
from napari_dlmicro.core.models.classifier.forest import Forest
from napari_dlmicro.core.models.classifier.labelled import labelled_rows
from napari_dlmicro.core.models.classifier.objects import Objects
from napari_dlmicro.core.models.classifier.prediction import Prediction
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job

FOREST = "forest.safetensors"
TREES = 100
# Features each split may choose from. Measured at 3/5/10/20 labels per class over six seeds, test accuracy on
# the nuclei sample's size classes: 0.69/0.81/0.94/0.97 with sqrt (scikit-learn's default), 0.75/0.85/0.96/1.00
# with half, 0.75/0.88/0.995/1.00 with all; on the IHC nuclei all three 0.997-0.998. Half keeps most of the gain
# while the trees stay decorrelated, which the uncertainty of "Suggest" relies on
MAX_FEATURES = 0.5


@dataclass(frozen=True)
class Explanation:
    """Why one object got its class: each feature's share in moving it there, and the forest's importances.

    ``contributions[j]`` is how much feature ``names[j]`` raised (or, negative,
    lowered) the probability of ``class_name`` for this object; ``bias`` is
    the probability before any split (the share of that class in training).
    """

    label: int
    class_name: str
    probability: float
    bias: float
    names: tuple[str, ...]
    contributions: np.ndarray
    importance: np.ndarray

    def top(self, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` features that moved this object most, largest effect first."""
        order = np.argsort(-np.abs(self.contributions), kind="stable")[:n]
        return [(self.names[j], float(self.contributions[j])) for j in order]


class FastClassifier(ObjectClassifier):
    """A random forest over :mod:`.features` (see the module notes)."""

    kind = "fast"

    def __init__(self, forest: Forest, feature_names: Sequence[str], classes: Sequence[ClassSpec], n_channels: int,
                 ndim: int, name: str = "classifier", history: list | None = None,
                 assessment: Assessment | None = None, meta: dict | None = None, estimator: Any = None) -> None:
        if forest.n_classes != len(classes) or forest.n_features != len(feature_names):
            raise UserError(f"the forest of '{name}' does not match its classes or features",
                            "re-train the classifier")
        self.forest, self.feature_names, self.classes = forest, tuple(feature_names), tuple(classes)
        self.n_channels, self.ndim, self.name = int(n_channels), int(ndim), name
        self.history, self.assessment, self.meta = list(history or []), assessment, dict(meta or {})
        self._estimator = estimator  # the fitted scikit-learn forest, while there is one: same answers, faster

    @property
    def importances(self) -> dict[str, float]:
        """Each feature's mean decrease in impurity over the forest (sums to 1)."""
        return {n: float(v) for n, v in zip(self.feature_names, self.forest.importance)}

    def check_features(self, features: ObjectFeatures) -> None:
        """Refuse features measured on images of other channels or dimensionality."""
        if features.n_channels != self.n_channels:
            raise UserError(f"the classifier '{self.name}' was trained on {self.n_channels}-channel images; these "
                            f"objects were measured on {features.n_channels} channel(s)",
                            f"classify images of {self.n_channels} channel(s), or train a classifier for these")
        if tuple(features.names) != self.feature_names:
            raise UserError(f"the objects were measured with other features than the classifier '{self.name}' "
                            "reads", "measure them with this version's features, or train a new classifier")

    def probabilities(self, values: np.ndarray) -> np.ndarray:
        """Class probabilities of feature rows."""
        if self._estimator is not None:
            return self._estimator.predict_proba(np.asarray(values, np.float32))
        return self.forest.predict_proba(values)

    def predict_features(self, features: ObjectFeatures) -> Prediction:
        """Every object's class probabilities, from its features."""
        self.check_features(features)
        return Prediction(features.ids, self.probabilities(features.values), self.classes)

    def predict_job(self, image, labels, token: CancelToken = NEVER, objects: Objects | None = None) -> Job:
        """Measure every object, then classify it; returns a :class:`Prediction`."""
        obj = objects if objects is not None else self.objects(image, labels)
        features = yield from features_job(None, None, token, objects=obj)
        token.check()
        return self.predict_features(features)

    def explain(self, features: ObjectFeatures, label: int) -> Explanation:
        """Why object ``label`` got its class (tree-path contributions of each feature)."""
        self.check_features(features)
        row = int(features.rows([label])[0])
        bias, contributions = self.forest.contributions(features.values[row])
        p = bias + contributions.sum(axis=0)
        k = int(np.argmax(p))
        return Explanation(int(label), self.classes[k].name, float(p[k]), float(bias[k]), self.feature_names,
                           contributions[:, k], self.forest.importance)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "features": {"names": list(self.feature_names),
                                                 "importance": self.forest.importance.tolist()},
                "forest": {"trees": len(self.forest.roots), "nodes": len(self.forest.left), "file": FOREST}}

    def save(self, folder: str | Path) -> Path:
        """``config.json`` and ``forest.safetensors`` into ``folder``, atomically."""
        return write_model_folder(folder, self.config(), lambda tmp: self.forest.save(tmp / FOREST))

    @classmethod
    def from_folder(cls, folder: Path, config: dict[str, Any], classes: tuple[ClassSpec, ...]) -> FastClassifier:
        """Load a fast classifier saved by :meth:`save`."""
        features = config.get("features") or {}
        names = features.get("names")
        if not isinstance(names, list):
            raise UserError(f"config.json of '{folder.name}' names no features", "re-train the classifier")
        assessment = Assessment.from_dict(config["assessment"]) if config.get("assessment") else None
        meta = {k: config[k] for k in ("training", "data", "description") if k in config}
        return cls(Forest.load(folder / FOREST), names, classes, int(config["n_channels"]), int(config["ndim"]),
                   str(config.get("name", folder.name)), config.get("history"), assessment, meta)


def forest_model(trees: int = TREES, seed: int = 0, n_jobs: int | None = 1) -> RandomForestClassifier:
    """The scikit-learn forest the fast classifier fits: classes weighted by their number of examples."""
    return RandomForestClassifier(n_estimators=int(trees), class_weight="balanced", random_state=int(seed),
                                  max_features=MAX_FEATURES, n_jobs=n_jobs)


def training_matrix(features: Sequence[ObjectFeatures], tables: Sequence[Mapping[int, str]],
                    classes: Sequence[ClassSpec], names: Sequence[str] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, y, notes)``: the labelled objects' feature rows and class indices over every image (checked)."""
    names = names or [f"image {i + 1}" for i in range(len(features))]
    if len({f.names for f in features}) > 1:
        raise UserError("the images were measured with different features (channels or dimensionality differ)",
                        "train on images of one kind")
    labelled = labelled_rows([(n, f.ids, f.sizes, f.at_border) for n, f in zip(names, features)], tables, classes)
    X = np.concatenate([f.values[r] for f, r in zip(features, labelled.rows)])
    return X, labelled.y, labelled.notes


def fit_fast(features: ObjectFeatures | Sequence[ObjectFeatures], tables: Mapping[int, str] | Sequence,
             classes: Sequence[ClassSpec], trees: int = TREES, seed: int = 0, n_jobs: int | None = 1,
             name: str = "classifier", names: Sequence[str] | None = None) -> FastClassifier:
    """A fast classifier fitted on the labelled objects: one image's features and table, or lists of them."""
    if isinstance(features, ObjectFeatures):
        features, tables = [features], [tables]
    X, y, _ = training_matrix(features, tables, classes, names)
    return fit_matrix(X, y, classes, features[0], trees, seed, n_jobs, name)


def fit_matrix(X: np.ndarray, y: np.ndarray, classes: Sequence[ClassSpec], like: ObjectFeatures,
               trees: int = TREES, seed: int = 0, n_jobs: int | None = 1, name: str = "classifier"
               ) -> FastClassifier:
    """A fast classifier fitted on feature rows ``X`` of classes ``y`` (measured as ``like``)."""
    model = forest_model(trees, seed, n_jobs).fit(np.asarray(X, np.float32), np.asarray(y, np.int64))
    return FastClassifier(Forest.from_sklearn(model), like.names, classes, like.n_channels, like.ndim, name,
                          estimator=model)


def fit_and_predict(X: np.ndarray, y: np.ndarray, values: np.ndarray, trees: int = TREES, seed: int = 0
                    ) -> tuple[Forest, np.ndarray]:
    """Fit the forest on rows ``X`` of classes ``y`` and give the class probabilities of every row of ``values``.

    What a click in the dock asks for, as one call of plain arrays that
    :func:`...runtime.offload.call` can run in its helper process: between
    its trees scikit-learn's fit runs Python that holds the global lock,
    and a thread doing it makes napari's event loop wait for the lock at each
    of the many calls into Qt and OpenGL that release it (a frame then takes
    1.5-3 times as long).
    """
    model = forest_model(trees, seed).fit(np.asarray(X, np.float32), np.asarray(y, np.int64))
    return Forest.from_sklearn(model), model.predict_proba(np.asarray(values, np.float32))


def cross_validate(X: np.ndarray, y: np.ndarray, classes: Sequence[ClassSpec], folds: int = 5, trees: int = TREES,
                   seed: int = 0, n_jobs: int | None = 1, token: CancelToken = NEVER) -> Assessment | None:
    """Every labelled object predicted by a forest fitted without it (``folds``-fold, stratified).

    None when a class has a single example (nothing of it can be held out).
    """
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < 2:
        return None
    k = int(max(2, min(folds, counts.min())))
    predicted = np.zeros(len(y), np.int64)
    for held in stratified_folds(y, k, seed):
        token.check()
        train = np.setdiff1d(np.arange(len(y)), held)
        model = forest_model(trees, seed, n_jobs).fit(np.asarray(X[train], np.float32), y[train])
        p = model.predict_proba(np.asarray(X[held], np.float32))
        predicted[held] = model.classes_[np.argmax(p, axis=1)]
    names = tuple(c.name for c in classes)
    return Assessment(names, confusion_matrix(y, predicted, len(classes)),
                      f"{k}-fold cross-validation over {len(y)} labelled objects")


def assess_fast(features: ObjectFeatures, table: Mapping[int, str], classes: Sequence[ClassSpec],
                val_fraction: float = 0.2, trees: int = TREES, seed: int = 0, token: CancelToken = NEVER
                ) -> Assessment | None:
    """Held-out accuracy and confusion matrix of the fast classifier on one image's clicks (None: too few)."""
    X, y, _ = training_matrix([features], [table], classes)
    return cross_validate(X, y, classes, default_folds(val_fraction), trees, seed, token=token)


def default_folds(val_fraction: float) -> int:
    """Folds of the cross-validation that holds out ``val_fraction`` of the objects at a time."""
    return int(max(2, round(1.0 / max(val_fraction, 1e-6))))
