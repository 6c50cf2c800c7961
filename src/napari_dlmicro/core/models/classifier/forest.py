"""A fitted random forest as plain arrays: saved without pickle, predicted with numpy, explained per object.

scikit-learn fits the forest; its trees are then held as five arrays over
all nodes (left and right child, feature, threshold, class fractions) and
the root of each tree. Those arrays are all a saved model holds
(safetensors: numbers only, nothing that runs), and :meth:`Forest.predict_proba`
walks them exactly as scikit-learn does (``x[feature] <= threshold`` goes
left, on float32 features), so a loaded forest predicts what the fitted one did,
in any scikit-learn version or none.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from napari_dlmicro.core.errors import UserError

ARRAYS = ("left", "right", "feature", "threshold", "value", "roots", "importance")


@dataclass(frozen=True)
class Forest:
    """Trees over ``n_features`` features and ``value.shape[1]`` classes (see the module notes).

    ``left``/``right`` are global node indices (-1 at leaves), ``value`` the
    class fractions at every node, ``importance`` the mean decrease in
    impurity of each feature (scikit-learn's ``feature_importances_``).
    """

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    importance: np.ndarray

    @property
    def n_classes(self) -> int:
        """Columns of the predicted probabilities."""
        return int(self.value.shape[1])

    @property
    def n_features(self) -> int:
        """Columns the forest reads."""
        return int(self.importance.shape[0])

    @classmethod
    def from_sklearn(cls, model) -> Forest:
        """The arrays of a fitted ``RandomForestClassifier`` whose classes are 0..K-1."""
        k = len(model.classes_)
        if not np.array_equal(model.classes_, np.arange(k)):
            raise ValueError("the forest must be fitted on class indices 0..K-1")
        parts: dict[str, list[np.ndarray]] = {n: [] for n in ("left", "right", "feature", "threshold", "value")}
        roots, offset = [], 0
        for est in model.estimators_:
            t = est.tree_
            roots.append(offset)
            leaf = t.children_left < 0
            parts["left"].append(np.where(leaf, -1, t.children_left + offset))
            parts["right"].append(np.where(leaf, -1, t.children_right + offset))
            parts["feature"].append(np.where(leaf, 0, t.feature))
            parts["threshold"].append(np.where(leaf, 0.0, t.threshold))
            value = t.value[:, 0, :].astype(np.float64)
            parts["value"].append(value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300))
            offset += t.node_count
        return cls(*(np.concatenate(parts[n]).astype(dt) for n, dt in (
            ("left", np.int64), ("right", np.int64), ("feature", np.int64), ("threshold", np.float64),
            ("value", np.float64))), np.asarray(roots, np.int64),
            np.asarray(model.feature_importances_, np.float64))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, K): the mean over trees of the class fractions at each sample's leaf."""
        X = np.ascontiguousarray(X, np.float32)  # scikit-learn compares float32 features with its thresholds
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise UserError(f"the forest reads {self.n_features} features, the objects have "
                            f"{X.shape[-1] if X.ndim else 0}", "measure the objects as the classifier was trained")
        n, n_trees = len(X), len(self.roots)
        flat = X.ravel()
        node = np.repeat(self.roots, n)
        base = np.tile(np.arange(n, dtype=np.int64) * X.shape[1], n_trees)
        leaf = self.left < 0
        active = np.flatnonzero(~leaf[node])
        while active.size:  # every sample of every tree one level down, until all are at leaves
            at = node[active]
            go_left = flat[base[active] + self.feature[at]] <= self.threshold[at]
            at = np.where(go_left, self.left[at], self.right[at])
            node[active] = at
            active = active[~leaf[at]]
        return self.value[node].reshape(n_trees, n, -1).mean(axis=0)

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """How each feature moved one sample's class probabilities: ``(bias (K,), per feature (F, K))``.

        Along each tree's path, a split on feature f moves the class fractions
        from the node's to the child's; those moves summed per feature and
        averaged over trees, plus the mean root fractions (the bias), give the
        predicted probabilities exactly (the tree-path decomposition of Saabas).
        """
        x = np.asarray(x, np.float32).ravel()
        bias = self.value[self.roots].mean(axis=0)
        out = np.zeros((self.n_features, self.n_classes))
        for root in self.roots:
            node = int(root)
            while self.left[node] >= 0:
                f = int(self.feature[node])
                child = int(self.left[node] if x[f] <= self.threshold[node] else self.right[node])
                out[f] += self.value[child] - self.value[node]
                node = child
        return bias, out / len(self.roots)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays by name, to save."""
        return {n: np.ascontiguousarray(getattr(self, n)) for n in ARRAYS}

    def save(self, path: str | Path) -> None:
        """Write the arrays as safetensors to ``path`` (the caller makes it atomic)."""
        save_file(self.arrays(), str(path))

    @classmethod
    def load(cls, path: str | Path) -> Forest:
        """Read a forest saved by :meth:`save`, checked for consistency."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"'{path.parent.name}' has no {path.name}", "pick a classifier folder saved by "
                            "napari-dlmicro")
        try:
            arrays = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"{path.name} in '{path.parent.name}' is damaged ({exc})", "re-train the classifier") \
                from None
        missing = [n for n in ARRAYS if n not in arrays]
        if missing:
            raise UserError(f"{path.name} in '{path.parent.name}' lacks {', '.join(missing)}",
                            "re-train the classifier")
        forest = cls(**{n: arrays[n] for n in ARRAYS})
        forest._check(path)
        return forest

    def _check(self, path: Path) -> None:
        n_nodes = len(self.left)
        sizes_agree = all(len(a) == n_nodes for a in (self.right, self.feature, self.threshold, self.value))
        inside = lambda a: a.size == 0 or (a.min() >= -1 and a.max() < n_nodes)
        ok = (sizes_agree and self.value.ndim == 2 and inside(self.left) and inside(self.right)
              and len(self.roots) > 0 and inside(self.roots) and self.roots.min() >= 0
              and (self.feature.min() >= 0 and self.feature.max() < self.n_features if n_nodes else True)
              and np.array_equal(self.left < 0, self.right < 0))
        if not ok:
            raise UserError(f"the forest in {path.name} of '{path.parent.name}' is inconsistent",
                            "re-train the classifier")
        # every walk must end: children always lie after their parent, as scikit-learn numbers nodes
        inner = np.flatnonzero(self.left >= 0)
        if (self.left[inner] <= inner).any() or (self.right[inner] <= inner).any():
            raise UserError(f"the forest in {path.name} of '{path.parent.name}' has cycles", "re-train the classifier")
