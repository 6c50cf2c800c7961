"""The Training dock: train StarDist, fine-tune Cellpose, or a semantic U-Net on a training set.

Loss curves and validation scores are drawn live; "Stop" ends training at the
next step and keeps the best checkpoint (saved, thresholds tuned); the model
lands in the store and shows up in the segmentation docks at once.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from napari.utils.notifications import show_info
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_dlmicro.core.data.augment import AUGMENTATION_TIPS, AUGMENTATIONS
from napari_dlmicro.core.data.training_sets import load_pairs, summarize
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.train import SegmentationTraining, train_segmentation
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.devices import DEVICE_CHOICES
from napari_dlmicro.core.runtime.events import Metrics, Progress, format_eta
from napari_dlmicro.widgets._folder_row import FolderRow
from napari_dlmicro.widgets._line_plot import LinePlot, Panel
from napari_dlmicro.widgets._status_line import StatusLine
from napari_dlmicro.widgets.annotation import AnnotationWidget
from napari_dlmicro.widgets.segmentation import SegmentationWidget
from napari_dlmicro.workers import JobHandle, start_job

SECTION = "training"
DEFAULTS = SegmentationTraining()  # the form's values before the user changes any
KINDS = (("StarDist", "stardist"), ("Cellpose-SAM fine-tuning", "cellpose"), ("Semantic U-Net", "semantic"))


class TrainingWidget(QWidget):
    """Dock: training set + settings -> a model in the store, with live curves."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.handle: JobHandle | None = None
        self.result = None
        self.last_model: str | None = None
        r = load_settings(SECTION)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        folder_row = FolderRow(r.get("folder", ""), "Training set: images/ + masks/, or Cellpose *_masks.tif",
                               "Training set folder", self.update_summary)
        self.folder_edit = folder_row.edit
        form.addRow("Training set", folder_row)
        self.summary = QLabel("")
        form.addRow("", self.summary)
        self.kind_combo = QComboBox()
        for label, kind in KINDS:
            self.kind_combo.addItem(label, kind)
        self.kind_combo.currentIndexChanged.connect(self._on_kind)
        form.addRow("Model", self.kind_combo)
        self.init_combo = QComboBox(toolTip="Start from scratch, or continue from a stored or pretrained model")
        form.addRow("Start from", self.init_combo)
        self.name_edit = QLineEdit(r.get("name", "my-stardist"), toolTip="Name in the model store")
        form.addRow("Save as", self.name_edit)
        self.val_fraction = QDoubleSpinBox(minimum=0.05, maximum=0.5, singleStep=0.05,
                                           value=r.get("val_fraction", DEFAULTS.val_fraction))
        form.addRow("Validation fraction", self.val_fraction)
        self.minutes = QDoubleSpinBox(minimum=0.0, maximum=1440.0, decimals=1, value=r.get("minutes", 5.0),
                                      toolTip="Wall-clock budget in minutes (0: use epochs)")
        self.epochs = QSpinBox(minimum=0, maximum=100000, value=r.get("epochs", 0), toolTip="Epochs (0: use the time budget)")
        budget = QHBoxLayout()
        budget.addWidget(self.minutes)
        budget.addWidget(QLabel("min, or epochs"))
        budget.addWidget(self.epochs)
        form.addRow("Budget", budget)
        self.patch = QSpinBox(minimum=16, maximum=1024, singleStep=16, value=r.get("patch", DEFAULTS.patch))
        form.addRow("Patch size", self.patch)
        self.batch = QSpinBox(minimum=1, maximum=256, value=r.get("batch", DEFAULTS.batch))
        form.addRow("Batch size", self.batch)
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-6, maximum=1.0, singleStep=1e-4, value=r.get("lr", DEFAULTS.lr))
        form.addRow("Learning rate", self.lr)
        self.val_every = QSpinBox(minimum=0, maximum=100000, value=0, toolTip="Steps per epoch (0: one pass over the data)")
        form.addRow("Steps per epoch", self.val_every)
        aug = QGridLayout()  # three a row: the dock stays narrow
        self.augment = {}
        for i, name in enumerate(AUGMENTATIONS):
            box = QCheckBox(name, toolTip=AUGMENTATION_TIPS.get(name, ""))
            box.setChecked(name in r.get("augment", list(DEFAULTS.augment)))
            self.augment[name] = box
            aug.addWidget(box, i // 3, i % 3)
        form.addRow("Augmentation", aug)
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        form.addRow("Device", self.device_combo)
        layout.addLayout(form)
        self.cost = QLabel("")
        self.cost.setWordWrap(True)
        layout.addWidget(self.cost)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.start())
        self.continue_button = QPushButton("Continue training", toolTip="Train the last model further on the (corrected) set")
        self.continue_button.clicked.connect(self.continue_training)
        self.continue_button.setEnabled(False)
        self.stop_button = QPushButton("Stop (keep best)")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        for b in (self.train_button, self.continue_button, self.stop_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.status = StatusLine("")
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.plot = LinePlot((Panel(("train_loss", "val_loss"), ("train loss", "validation loss"), log_y=True),
                              Panel(("f1", "ap"), ("F1@0.5", "AP@0.5"), y_range=(0.0, 1.0), markers=True)),
                             min_height=220)
        layout.addWidget(self.plot)
        self._on_kind()
        self.update_summary()
        _warm_up()

    # -- settings ---------------------------------------------------------------
    def set_folder(self, folder: str) -> None:
        self.folder_edit.setText(folder)
        self.update_summary()

    def update_summary(self) -> None:
        folder = self.folder_edit.text().strip()
        try:
            self.summary.setText(str(summarize(folder)) if folder else "")
        except UserError as exc:
            self.summary.setText(str(exc))

    def _on_kind(self, *_) -> None:
        kind = self.kind_combo.currentData()
        self.init_combo.clear()
        self.init_combo.addItem("(new model)", None)
        for m in list_models():
            if m.kind == kind or (kind == "cellpose" and m.name == "cellpose:cpsam"):
                self.init_combo.addItem(m.name, m.name if ":" in m.name else m.location)
        if kind == "cellpose":
            self.init_combo.setCurrentIndex(max(0, self.init_combo.findData("cellpose:cpsam")))
            self.cost.setText("Cellpose-SAM fine-tuning is meant for a GPU. On a CPU one 256x256 training step "
                              "takes about a minute and one 512x512 validation image about 80 s; expect hours.")
        else:
            self.cost.setText("")

    def spec(self, init: str | None = None) -> SegmentationTraining:
        """The training request from the form."""
        name = self.name_edit.text().strip() or "model"
        minutes, epochs = self.minutes.value(), self.epochs.value()
        extra = {"validate_every": self.val_every.value()} if self.val_every.value() else {}
        extra["threads"] = max(1, (os.cpu_count() or 1) - 1)  # a core for napari's event loop
        return SegmentationTraining(
            kind=self.kind_combo.currentData(), out=store_dir() / name, name=name,
            init=init if init is not None else self.init_combo.currentData(),
            val_fraction=self.val_fraction.value(), minutes=(minutes or None) if not epochs else None,
            epochs=epochs or None, patch=self.patch.value(), batch=self.batch.value(), lr=self.lr.value(),
            augment=tuple(n for n, b in self.augment.items() if b.isChecked()),
            device=self.device_combo.currentText(), extra=extra)

    def _remember(self) -> None:
        save_settings(SECTION, dict(folder=self.folder_edit.text(), name=self.name_edit.text(),
                                    val_fraction=self.val_fraction.value(), minutes=self.minutes.value(),
                                    epochs=self.epochs.value(), patch=self.patch.value(), batch=self.batch.value(),
                                    lr=self.lr.value(), augment=[n for n, b in self.augment.items() if b.isChecked()]))

    # -- running ------------------------------------------------------------------
    def start(self, init: str | None = None) -> JobHandle | None:
        """Start training in a worker thread."""
        if self.handle is not None and not self.handle.finished:
            return self.handle
        folder = self.folder_edit.text().strip()
        spec = self.spec(init)
        self._remember()
        self.plot.clear()
        self.result = None
        self._started = time.perf_counter()
        if spec.kind == "cellpose":
            _preload_cellpose()  # seconds of imports: at the click, not in bursts while training

        def job(token):
            return (yield from train_segmentation(load_pairs(folder), spec, token))

        self._busy(True)
        self.handle = start_job(job, title=f"Train {spec.name}", on_event=self._on_event,
                                on_result=self._on_result, on_error=lambda msg: self.status.setText(msg),
                                on_finished=self._on_finished)
        return self.handle

    def continue_training(self) -> JobHandle | None:
        """Train the last model further (after more annotations were corrected)."""
        if self.last_model is None:
            return None
        return self.start(init=self.last_model)

    def stop(self) -> None:
        """End training at the next step: the best weights are kept, tuned and saved."""
        if self.handle is not None and not self.handle.finished:
            self.handle.token.cancel()
            self.status.setText("stopping: validating and saving the best model…")

    def _on_finished(self, cancelled: bool) -> None:
        if self.result is not None:  # trained (or stopped and saved): the bar ends full
            self.progress.setValue(self.progress.maximum())
        self._busy(False)

    def _busy(self, busy: bool) -> None:
        self.train_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.continue_button.setEnabled(not busy and self.last_model is not None)

    def _on_event(self, ev) -> None:
        if isinstance(ev, Progress):
            self.progress.setMaximum(max(ev.total, 1))
            self.progress.setValue(min(ev.done, ev.total))
            self.status.setText(f"{ev.message} — ETA {format_eta(ev.eta_s)}")
        elif isinstance(ev, Metrics) and "train_loss" in ev.values:
            self.plot.add(ev.step, ev.values)

    def _on_result(self, result) -> None:
        self.result = result
        folder = getattr(result, "folder", None)
        if folder is None:
            return
        self.last_model = str(folder)
        best = getattr(result, "best", {}) or {}
        f1 = best.get("f1_optimized", best.get("f1"))
        self.status.setText(f"saved '{Path(folder).name}' to the model store"
                            + (f" (validation F1@0.5 {f1:.3f})" if f1 is not None else ""))
        show_info(f"Training: model '{Path(folder).name}' saved; it is listed in the segmentation docks")
        refresh_model_lists()
        self._on_kind()


def refresh_model_lists() -> None:
    """Make every open dock that lists models show the new one."""
    for w in QApplication.allWidgets():
        if isinstance(w, SegmentationWidget):
            w._refresh_models()
        elif isinstance(w, AnnotationWidget):
            w.refresh_models()


def _import_quietly(module: str) -> None:
    """Import ``module`` now if it is installed (a missing one is reported by the job itself)."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        pass


def _preload_cellpose() -> None:
    from napari_dlmicro.core.models.cellpose.weights import import_cellpose

    try:
        import_cellpose()  # guards the import against a crash between two LLVMs
    except ImportError:
        return
    _import_quietly("cellpose.train")


def _warm_up() -> None:
    """Do once, on the GUI thread at dock creation, the slow first-time work of a training job.

    The first optimiser imports ``torch._dynamo`` (seconds, holding the
    import lock), the first validation starts the geometry helper process, and
    the first checkpoint imports the model writers; an import of a compiled
    module holds the GIL for tens of milliseconds. Done here, none of it
    stalls napari while training runs.
    """
    import torch

    for module in ("safetensors.torch", "skimage.segmentation", "skimage.util",
                   "napari_dlmicro.core.models.stardist.train",
                   "napari_dlmicro.core.models.stardist.folder", "napari_dlmicro.core.jobs.train"):
        _import_quietly(module)

    from napari_dlmicro.core.runtime.llvm import avoid_triton_crash

    offload.warm_up()
    avoid_triton_crash()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
