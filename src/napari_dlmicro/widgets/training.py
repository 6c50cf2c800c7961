"""The Training dock: train StarDist, fine-tune Cellpose-SAM, or a semantic U-Net on a training set.

A thin view of :class:`...state.training.TrainingState`; the settings form is
built from the kind's declared settings (the same the CLI's flags come from).
Loss curves and validation scores are drawn live. *Stop* ends training after
its step, validates, keeps the best checkpoint, tunes and saves; *Cancel* ends
it at once with the best checkpoint already saved. The model lands in the
store, and every dock that lists models shows it at once.
"""
from __future__ import annotations

import contextlib
import importlib
import time
from pathlib import Path

from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton

from napari_dlmicro.core.data.augment import AUGMENTATION_TIPS
from napari_dlmicro.core.data.training_sets import load_pairs, summarize
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.train import train_job
from napari_dlmicro.core.models.cellpose.weights import import_cellpose
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.core.runtime.devices import DEVICE_CHOICES
from napari_dlmicro.core.runtime.events import Metric, Metrics, Progress
from napari_dlmicro.state.training import TrainingState, trainable_kinds
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.widgets._dock import DockPanel, narrow_combo
from napari_dlmicro.widgets._folder_row import FolderRow
from napari_dlmicro.widgets._line_plot import LinePlot, Panel
from napari_dlmicro.widgets._settings_form import SettingsForm
from napari_dlmicro.widgets._status_line import StatusLine
from napari_dlmicro.widgets._warm_up import warm_up
from napari_dlmicro.workers import JobHandle, start_job

CELLPOSE_COST = ("Cellpose-SAM fine-tuning is meant for a GPU. On a CPU one 256x256 training step takes about a "
                 "minute and one 512x512 validation image about 80 s; expect hours.")


class TrainingWidget(DockPanel):
    """Dock: training set + settings -> a model in the store, with live curves."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.state = TrainingState()
        self.state.restore()
        self.handle: JobHandle | None = None
        self.result = None
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        folder_row = FolderRow(self.state.folder, "Training set: images/ + masks/, or Cellpose *_masks.tif",
                               "Training set folder", self.update_summary)
        self.folder_edit = folder_row.edit
        form.addRow("Training set", folder_row)
        self.summary = QLabel("", wordWrap=True)
        form.addRow("", self.summary)
        self.kind_combo = narrow_combo(QComboBox())
        for kind in trainable_kinds():
            self.kind_combo.addItem(kind.title, kind.name)
        self.kind_combo.setCurrentIndex(max(0, self.kind_combo.findData(self.state.kind)))
        self.kind_combo.currentIndexChanged.connect(self._on_kind)
        form.addRow("Model", self.kind_combo)
        self.init_combo = narrow_combo(QComboBox(toolTip="Start from scratch, or continue from a stored or "
                                                         "pretrained model"))
        self.init_combo.currentIndexChanged.connect(
            lambda *_: setattr(self.state, "init", self.init_combo.currentData() or ""))
        form.addRow("Start from", self.init_combo)
        self.name_edit = bind(self.state, "name", QLineEdit(toolTip="Name in the model store"))
        form.addRow("Save as", self.name_edit)
        self.form = SettingsForm(self.state.values, none_text="none", tips=AUGMENTATION_TIPS)
        form.addRow(self.form)
        self.device_combo = QComboBox()
        self.device_combo.addItems(list(DEVICE_CHOICES))
        form.addRow("Device", bind(self.state, "device", self.device_combo))
        self.body.addLayout(form)
        self.cost = QLabel("", wordWrap=True)
        self.body.addWidget(self.cost)
        buttons = QHBoxLayout()
        self.train_button = QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.start())
        self.continue_button = QPushButton("Continue", toolTip="Train the last model further on the (corrected) set")
        self.continue_button.clicked.connect(self.continue_training)
        self.stop_button = QPushButton("Stop", toolTip="Finish the step, keep the best weights, tune and save")
        self.stop_button.clicked.connect(self.stop)
        self.cancel_button = QPushButton("Cancel", toolTip="End now; the best checkpoint saved so far is kept")
        self.cancel_button.clicked.connect(self.cancel)
        for b in (self.train_button, self.continue_button, self.stop_button, self.cancel_button):
            buttons.addWidget(b)
        self.body.addLayout(buttons)
        self.progress = QProgressBar()
        self.status = StatusLine("")
        self.state.status.events.text.connect(self._show_status)
        self.body.addWidget(self.progress)
        self.body.addWidget(self.status)
        self.plot = LinePlot((Panel((Metric.TRAIN_LOSS, Metric.VAL_LOSS), ("train loss", "validation loss"),
                                    log_y=True),
                              Panel((Metric.F1, Metric.AP), ("F1@0.5", "AP@0.5"), y_range=(0.0, 1.0), markers=True)),
                             min_height=200)
        self.body.addWidget(self.plot)
        self._busy(False)
        self._on_kind()
        self.update_summary()
        _warm_up()

    def _show_status(self, text: str) -> None:
        self.status.setText(text)

    # -- the form's fields, by the names the settings have ---------------------------------------
    def field(self, name: str):
        """The form's field for setting ``name``."""
        return self.form.fields[name]

    minutes = property(lambda self: self.field("minutes"))
    epochs = property(lambda self: self.field("epochs"))
    patch = property(lambda self: self.field("patch"))
    batch = property(lambda self: self.field("batch"))
    lr = property(lambda self: self.field("lr"))
    val_every = property(lambda self: self.field("validate_every"))

    # -- settings ---------------------------------------------------------------
    def set_folder(self, folder: str) -> None:
        """Train on the training set in ``folder``."""
        self.folder_edit.setText(folder)
        self.update_summary()

    def update_summary(self) -> None:
        """What the training set holds, under its folder."""
        self.state.folder = folder = self.folder_edit.text().strip()
        try:
            self.summary.setText(str(summarize(folder)) if folder else "")
        except UserError as exc:
            self.summary.setText(str(exc))

    def _on_kind(self, *_) -> None:
        kind = self.kind_combo.currentData()
        if kind != self.state.kind:
            self.state.choose_kind(kind)
        self._list_models()
        self.cost.setText(CELLPOSE_COST if kind == "cellpose" else "")

    def _list_models(self) -> None:
        kind = self.state.kind
        current = self.init_combo.currentData()
        self.init_combo.blockSignals(True)
        self.init_combo.clear()
        self.init_combo.addItem("(new model)", None)
        for m in list_models():
            if m.kind == kind:
                self.init_combo.addItem(m.name, m.name if ":" in m.name else m.location)
        default = current or ("cellpose:cpsam" if kind == "cellpose" else None)
        self.init_combo.setCurrentIndex(max(0, self.init_combo.findData(default)) if default else 0)
        self.init_combo.blockSignals(False)
        self.state.init = self.init_combo.currentData() or ""

    def on_store_changed(self, folder: str) -> None:
        """A model was saved: offer it as a start."""
        self._list_models()

    # -- running ------------------------------------------------------------------
    def start(self, init: str | None = None) -> JobHandle | None:
        """Start training in a worker thread."""
        if self.handle is not None and not self.handle.finished:
            return self.handle
        self.update_summary()
        try:
            args = self.state.job_args(init)
        except UserError as exc:
            self.state.status.idle(str(exc))
            return None
        self.state.remember()
        self.plot.clear()
        self.result = None
        self._started = time.perf_counter()
        folder, kind = self.state.folder, self.state.kind
        if kind == "cellpose":
            _preload_cellpose()  # seconds of imports: at the click, not in bursts while training

        def job(token):
            return (yield from train_job(kind, load_pairs(folder), token=token, **args))

        self._busy(True)
        self.state.status.start(f"training {args['name']}…")
        handle = start_job(job, title=f"Train {args['name']}", on_event=self._on_event, on_result=self._on_result,
                           on_error=lambda msg: self.state.status.idle(msg), on_finished=self._on_finished)
        self.handle = self.track(handle)
        return self.handle

    def continue_training(self) -> JobHandle | None:
        """Train the last model further (after more annotations were corrected)."""
        if not self.state.last_model:
            return None
        return self.start(init=self.state.last_model)

    @property
    def last_model(self) -> str | None:
        """The folder of the model trained last (None before one was)."""
        return self.state.last_model or None

    def stop(self) -> None:
        """End training after its step: the best weights are kept, tuned and saved."""
        if self.handle is not None and not self.handle.finished:
            self.handle.stop()
            self.state.status.text = "stopping: validating and saving the best model…"

    def cancel(self) -> None:
        """End training now: the best checkpoint saved so far is kept; the dock is usable at once."""
        if self.handle is not None and not self.handle.finished:
            self.handle.cancel()

    def _on_finished(self, cancelled: bool) -> None:
        if self.result is not None:  # trained (or stopped and saved): the bar ends full
            self.progress.setValue(self.progress.maximum())
        if cancelled:
            self.state.status.idle("cancelled: the best checkpoint saved so far is kept")
        self._busy(False)

    def _busy(self, busy: bool) -> None:
        self.train_button.setEnabled(not busy)
        self.stop_button.setEnabled(busy)
        self.cancel_button.setEnabled(busy)
        self.continue_button.setEnabled(not busy and bool(self.state.last_model))

    def _on_event(self, ev) -> None:
        if isinstance(ev, Progress):
            self.progress.setMaximum(max(ev.total, 1))
            self.progress.setValue(min(ev.done, ev.total))
            self.state.status.progress(ev)
        elif isinstance(ev, Metrics) and Metric.TRAIN_LOSS in ev.values:
            self.plot.add(ev.step, ev.values)

    def _on_result(self, result) -> None:
        if result.folder is None:
            return
        self.state.last_model = str(result.folder)
        if self.handle is not None and self.handle.cancelled and self.handle.finished:
            self.continue_button.setEnabled(self.train_button.isEnabled())
            return  # a cancelled run: the dock has already moved on
        self.result = result
        score = result.score()
        self.state.status.idle(f"saved '{Path(result.folder).name}' to the model store"
                               + (f" (validation F1@0.5 {score:.3f})" if score is not None else ""), done=True)


def _preload_cellpose() -> None:
    with contextlib.suppress(ImportError):
        import_cellpose()  # guards the import against a crash between two LLVMs
        importlib.import_module("cellpose.train")


def _warm_up() -> None:
    """Start, in the background, the slow first-time work of a training job (see ``_warm_up``'s module).

    Besides the first optimiser: the first validation starts the geometry
    helper process, and the first checkpoint imports the model writers.
    """
    warm_up(("optimiser", "helper process"),
            ("safetensors.torch", "skimage.segmentation", "skimage.util", "napari_dlmicro.core.models.stardist.train",
             "napari_dlmicro.core.models.stardist.folder", "napari_dlmicro.core.jobs.train"))
