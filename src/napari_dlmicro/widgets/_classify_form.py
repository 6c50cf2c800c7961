"""The Classification dock's fields and buttons, bound to its state; the dock wires the buttons to its actions.

Laid out for a narrow dock: long rows wrap, combo boxes elide, the status,
count and accuracy lines have fixed heights (a new text only repaints
them), and the deep classifier's curves show only while it is chosen.
"""
from __future__ import annotations

import html
from collections.abc import Sequence

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_dlmicro.core.data.augment import AUGMENTATION_TIPS
from napari_dlmicro.core.models.classifier.settings import CLASSIFIERS
from napari_dlmicro.core.runtime.devices import DEVICE_CHOICES
from napari_dlmicro.core.runtime.events import Metric
from napari_dlmicro.state.classification import ClassificationState
from napari_dlmicro.state.classify_jobs import Why
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.widgets._classify_classes import ClassList
from napari_dlmicro.widgets._dock import narrow_combo
from napari_dlmicro.widgets._line_plot import LinePlot, Panel
from napari_dlmicro.widgets._settings_form import SettingsForm
from napari_dlmicro.widgets._status_line import StatusLine

CLICK_HINT = ("Select a class, then click objects in the viewer (pan/zoom mode) to label them; click one again "
              "to unlabel it. Keys 1-9 pick a class, W explains the object under the cursor (or tick "
              "Explain on hover).")
KIND_TITLES = {"fast": "fast: random forest on object features", "deep": "deep: ResNet-18 on object crops"}


def _header(text: str) -> QLabel:
    label = QLabel(f"<b>{html.escape(text)}</b>")
    label.setContentsMargins(0, 6, 0, 0)
    return label


def _row(*widgets: QWidget, stretch: int | None = None) -> QHBoxLayout:
    row = QHBoxLayout()
    for k, w in enumerate(widgets):
        row.addWidget(w, 1 if k == stretch else 0)
    return row


def confusion_html(classes: Sequence[str], rows: Sequence[Sequence[int]]) -> str:
    """The confusion matrix as a small HTML table: true classes down, predicted across."""
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c[:10])}</th>" for c in classes)
    body = "".join(f"<tr><th align='left'>{html.escape(c[:10])}</th>"
                   + "".join(f"<td align='right'>{'<b>' if i == j else ''}{v}{'</b>' if i == j else ''}</td>"
                             for j, v in enumerate(row)) + "</tr>" for i, (c, row) in enumerate(zip(classes, rows)))
    return (f"<small>held out: true class down, predicted across</small><table cellspacing='4'>"
            f"<tr><th></th>{head}</tr>{body}</table>")


def why_text(why: Why) -> str:
    """What "Why" found, in a few lines."""
    p = f" (probability {why.probability:.2f})" if why.probability == why.probability else ""
    lines = [f"object {why.label}: {why.class_name}{p}; {why.how}"]
    lines += [f"{name}: {value:+.3f}" for name, value in why.top[:6]]
    return "\n".join(lines)


class ClassifyForm(QWidget):
    """Every field of the dock, bound to ``state``; buttons are left for the dock to connect."""

    def __init__(self, state: ClassificationState, on_error, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        layers = QFormLayout()
        layers.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.image_combo = narrow_combo(QComboBox(toolTip="The image the objects' intensities come from"))
        self.labels_combo = narrow_combo(QComboBox(toolTip="The segmented objects (from the Segmentation dock, "
                                                           "or painted)"))
        layers.addRow("Image", self.image_combo)
        layers.addRow("Labels", self.labels_combo)
        outer.addLayout(layers)
        outer.addWidget(_header("Classes"))
        self.classes = ClassList(state, on_error)
        outer.addWidget(self.classes)
        hint = QLabel(CLICK_HINT, wordWrap=True)
        hint.setStyleSheet("color: gray")
        outer.addWidget(hint)
        self._classifier(outer)
        self._results(outer)
        outer.addStretch(1)
        state.events.kind.connect(self._show_kind)
        self._show_kind(state.kind)

    def _classifier(self, outer: QVBoxLayout) -> None:
        s = self.state
        outer.addWidget(_header("Classifier"))
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.kind_combo = QComboBox(toolTip="fast: refitted at every click, in well under a second; deep: "
                                            "fine-tuned on crops of the clicked objects (best on a GPU)")
        for kind in CLASSIFIERS:
            self.kind_combo.addItem(KIND_TITLES[kind], kind)
        self.kind_combo.setCurrentIndex(max(0, self.kind_combo.findData(s.kind)))
        form.addRow("Kind", self.kind_combo)
        self.live_check = bind(s, "live", QCheckBox("Retrain as I click", toolTip="Refit the fast classifier and "
                                                                                 "reclassify after every click"))
        form.addRow(self.live_check)
        self.settings_form = SettingsForm(s.values, none_text="none", tips=AUGMENTATION_TIPS)
        form.addRow(self.settings_form)
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        bind(s, "device", self.device_combo)
        self.device_label = QLabel("Device")
        form.addRow(self.device_label, self.device_combo)
        self.name_edit = bind(s, "name", QLineEdit(toolTip="Name of the classifier in the model store"))
        form.addRow("Save as", self.name_edit)
        outer.addLayout(form)
        self.train_button = QPushButton("Train", toolTip="Fit the classifier on the clicks and classify every object")
        self.stop_button = QPushButton("Stop", toolTip="End the deep training after its step; keep the best weights")
        self.cancel_button = QPushButton("Cancel", toolTip="End the running job now; the clicks are kept")
        outer.addLayout(_row(self.train_button, self.stop_button, self.cancel_button))
        self.progress = QProgressBar(maximum=1000)
        self.status = StatusLine("Idle", lines=3)
        outer.addWidget(self.progress)
        outer.addWidget(self.status)
        self.plot = LinePlot((Panel((Metric.TRAIN_LOSS, Metric.VAL_LOSS), ("train loss", "validation loss"),
                                    log_y=True),
                              Panel((Metric.ACCURACY, "balanced_accuracy"), ("accuracy", "balanced"),
                                    y_range=(0.0, 1.0), markers=True)), min_height=170)
        outer.addWidget(self.plot)
        s.status.events.text.connect(self.status.setText)
        s.status.events.fraction.connect(lambda f: self.progress.setValue(int(f * 1000)))

    def _results(self, outer: QVBoxLayout) -> None:
        s = self.state
        outer.addWidget(_header("Results"))
        self.counts = StatusLine("", lines=3)
        self.accuracy = StatusLine("", lines=4)
        self.confusion = QLabel("", wordWrap=True)
        for w in (self.counts, self.accuracy, self.confusion):
            outer.addWidget(w)
        s.events.counts.connect(self.counts.setText)
        s.events.accuracy.connect(self.accuracy.setText)
        s.events.confusion.connect(lambda *_: self.confusion.setText(
            confusion_html(s.confusion_classes, s.confusion)))
        self.suggest_button = QPushButton("Suggest", toolTip="Mark the objects the classifier is least sure of: "
                                                             "label those next")
        self.suggest_spin = bind(s, "suggest", QSpinBox(minimum=1, maximum=500, toolTip="How many to suggest"))
        self.why_button = QPushButton("Why?", toolTip="Why the object under the cursor (or the last clicked) got "
                                                      "its class: features (fast) or Grad-CAM (deep)")
        outer.addLayout(_row(self.suggest_button, self.suggest_spin, self.why_button))
        self.hover_check = bind(s, "hover", QCheckBox("Explain on hover", toolTip="Explain the object under the "
                                                      "cursor once it rests there (remembered)"))
        outer.addWidget(self.hover_check)
        self.why_label = QLabel("", wordWrap=True)
        outer.addWidget(self.why_label)
        self.export_button = QPushButton("Export CSV…", toolTip="label, class, probability of every object")
        self.export_clicks_button = QPushButton("Clicks CSV…", toolTip="The training table: label, class")
        self.clear_button = QPushButton("Clear clicks")
        outer.addLayout(_row(self.export_button, self.export_clicks_button, self.clear_button))
        self.save_button = QPushButton("Save to store", toolTip="Save the classifier (with its classes) under "
                                                                "'Save as' in the model store")
        outer.addLayout(_row(self.save_button))
        self.model_combo = narrow_combo(QComboBox(toolTip="Classifiers in the model store"))
        self.classify_button = QPushButton("Classify", toolTip="Apply the stored classifier to this image (every "
                                                               "time point)")
        outer.addLayout(_row(QLabel("Stored"), self.model_combo, self.classify_button, stretch=1))

    def _show_kind(self, kind: str) -> None:
        deep = kind == "deep"
        self.live_check.setVisible(not deep)
        self.device_label.setVisible(deep)
        self.device_combo.setVisible(deep)
        self.plot.setVisible(deep)
        self.stop_button.setVisible(deep)

    def show_why(self, why: Why | None) -> None:
        """The text of a "Why" (None: clear it)."""
        self.why_label.setText("" if why is None else why_text(why))

    def busy(self, busy: bool) -> None:
        """Buttons while a job runs: Cancel (and Stop) on, the rest off."""
        for b in (self.train_button, self.classify_button, self.save_button):
            b.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.cancel_button.setEnabled(busy)

