"""The Evaluate dock: score a Labels layer against ground truth; mistakes shown as a layer.

The errors layer holds 1 for false positives (predicted objects with no
match) and 2 for misses (ground-truth objects with no match).
"""
from __future__ import annotations

import numpy as np
from napari.layers import Labels
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.segmentation import error_mask, score, table
from napari_dlmicro.widgets._line_plot import LinePlot, Panel
from napari_dlmicro.workers import JobHandle, start_job

ERRORS_SUFFIX = " [errors]"


def _evaluate_job(pred: np.ndarray, gt: np.ndarray, ious: tuple[float, ...], token):
    """Scores at each IoU and the error mask at the first one (a job generator without events)."""
    token.check()
    scores = score(pred, gt, ious)
    token.check()
    return scores, error_mask(pred, gt, ious[0])
    yield  # unreachable: makes this function a generator


class EvaluateWidget(QWidget):
    """Dock: prediction + ground truth -> table, plot against IoU, and an errors layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.handle: JobHandle | None = None
        self.scores = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.pred_combo = QComboBox(toolTip="Labels to score (a model's output)")
        self.gt_combo = QComboBox(toolTip="Ground-truth labels")
        self.iou_edit = QLineEdit("0.5 0.6 0.7 0.8 0.9", toolTip="IoU thresholds; the first one decides the errors layer")
        form.addRow("Prediction", self.pred_combo)
        form.addRow("Ground truth", self.gt_combo)
        form.addRow("IoU thresholds", self.iou_edit)
        layout.addLayout(form)
        button = QPushButton("Evaluate")
        button.clicked.connect(self.evaluate)
        layout.addWidget(button)
        self.table = QLabel("")
        self.table.setFont(QFont("monospace", 8))
        layout.addWidget(self.table)
        self.plot = LinePlot((Panel(("precision", "recall", "f1", "ap"), ("precision", "recall", "F1", "AP"),
                                    y_range=(0.0, 1.0), markers=True),), xlabel="IoU threshold")
        layout.addWidget(self.plot)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    def _refresh(self, *_) -> None:
        names = [layer.name for layer in self.viewer.layers
                 if isinstance(layer, Labels) and not layer.name.endswith(ERRORS_SUFFIX)]
        for combo in (self.pred_combo, self.gt_combo):
            current = combo.currentText()
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)

    def ious(self) -> tuple[float, ...]:
        try:
            return tuple(float(v) for v in self.iou_edit.text().replace(",", " ").split())
        except ValueError:
            raise UserError("IoU thresholds must be numbers", "type them like 0.5 0.7 0.9") from None

    def evaluate(self) -> JobHandle | None:
        """Score the chosen layers in a worker; the table, plot and errors layer follow."""
        from napari.utils.notifications import show_error

        try:
            pred = self.viewer.layers[self.pred_combo.currentText()]
            gt = self.viewer.layers[self.gt_combo.currentText()]
            ious = self.ious()
        except (KeyError, UserError) as exc:
            show_error(f"Evaluate: {exc if isinstance(exc, UserError) else 'pick a prediction and a ground truth'}")
            return None
        pred_data, gt_data = np.asarray(pred.data), np.asarray(gt.data)

        def done(value) -> None:
            self.scores, errors = value
            self.table.setText(table(self.scores))
            self.plot.set_curves([s.iou for s in self.scores],
                                 {k: [getattr(s, k) for s in self.scores] for k in ("precision", "recall", "f1", "ap")})
            name = pred.name + ERRORS_SUFFIX
            if name in self.viewer.layers:
                self.viewer.layers[name].data = errors
            else:
                self.viewer.add_labels(errors, name=name, scale=pred.scale, translate=pred.translate, opacity=0.7)

        self.handle = start_job(lambda token: _evaluate_job(pred_data, gt_data, ious, token), title="Evaluate",
                                on_result=done)
        return self.handle
