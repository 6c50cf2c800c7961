"""The Evaluate dock: score a Labels layer against ground truth; mistakes shown as a layer.

The errors layer holds 1 for false positives (predicted objects with no
match) and 2 for misses (ground-truth objects with no match).
"""
from __future__ import annotations

from napari.layers import Labels
from napari.utils.notifications import show_error
from qtpy.QtGui import QFont
from qtpy.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QPushButton

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.segmentation import table
from napari_dlmicro.core.jobs.evaluate import Evaluation, evaluate_job
from napari_dlmicro.state.evaluate import EvaluateState
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.widgets._dock import DockPanel, narrow_combo
from napari_dlmicro.widgets._lazy_layers import held_data
from napari_dlmicro.widgets._line_plot import LinePlot, Panel
from napari_dlmicro.workers import JobHandle, start_job

ERRORS_SUFFIX = " [errors]"
CURVES = ("precision", "recall", "f1", "ap")


class EvaluateWidget(DockPanel):
    """Dock: prediction + ground truth -> table, plot against IoU, and an errors layer."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.state = EvaluateState()
        self.handle: JobHandle | None = None
        self.scores = None
        form = QFormLayout()
        self.pred_combo = narrow_combo(QComboBox(toolTip="Labels to score (a model's output)"))
        self.gt_combo = narrow_combo(QComboBox(toolTip="Ground-truth labels"))
        self.iou_edit = bind(self.state, "ious", QLineEdit(toolTip="IoU thresholds; the first decides the errors"))
        form.addRow("Prediction", self.pred_combo)
        form.addRow("Ground truth", self.gt_combo)
        form.addRow("IoU thresholds", self.iou_edit)
        self.body.addLayout(form)
        self.button = QPushButton("Evaluate")
        self.button.clicked.connect(self._evaluate_or_cancel)
        self.body.addWidget(self.button)
        self.table = QLabel("")
        self.table.setFont(QFont("monospace", 8))
        self.body.addWidget(self.table)
        self.plot = LinePlot((Panel(CURVES, ("precision", "recall", "F1", "AP"), y_range=(0.0, 1.0), markers=True),),
                             xlabel="IoU threshold")
        self.body.addWidget(self.plot)
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
        """The IoU thresholds typed in the dock, checked."""
        return self.state.thresholds()

    def _evaluate_or_cancel(self) -> None:
        if self.handle is not None and not self.handle.finished:
            self.handle.cancel()
        else:
            self.evaluate()

    def _ended(self, cancelled: bool) -> None:
        self.button.setText("Evaluate")

    def evaluate(self) -> JobHandle | None:
        """Score the chosen layers in a worker; the table, plot and errors layer follow."""
        try:
            names = self.pred_combo.currentText(), self.gt_combo.currentText()
            if not all(n in self.viewer.layers for n in names):
                raise UserError("pick a prediction and a ground truth", "both must be Labels layers")
            pred, gt = (self.viewer.layers[n] for n in names)
            ious = self.ious()
            pred_data, gt_data = held_data(pred, "score"), held_data(gt, "score")
        except UserError as exc:
            show_error(f"Evaluate: {exc}")
            return None

        def done(value: Evaluation) -> None:
            if self.handle is None or self.handle.cancelled:
                return
            self.scores, errors = value.scores, value.errors
            self.table.setText(table(self.scores))
            self.plot.set_curves([s.iou for s in self.scores],
                                 {k: [getattr(s, k) for s in self.scores] for k in CURVES})
            name = pred.name + ERRORS_SUFFIX
            if name in self.viewer.layers:
                self.viewer.layers[name].data = errors
            else:
                self.viewer.add_labels(errors, name=name, scale=pred.scale, translate=pred.translate, opacity=0.7)

        self.button.setText("Cancel")
        self.handle = self.track(start_job(lambda token: evaluate_job(pred_data, gt_data, ious, token),
                                           title="Evaluate", on_result=done, on_finished=self._ended))
        return self.handle
