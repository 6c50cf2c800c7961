"""The Denoising dock: train Noise2Void or CARE on layers, watch it learn, apply it to layers and folders."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QPushButton

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.axes import default_axes
from napari_dlmicro.core.io.files import tiff_files
from napari_dlmicro.core.jobs.denoise import VIEWS_SETTING, apply_job, denoise_files_job, load_restorer
from napari_dlmicro.core.jobs.train import read_training_data, train_job
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, engine_choices
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.restoration.network import load_restoration
from napari_dlmicro.core.models.restoration.train import RestorationData
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.core.runtime.events import Metric, Metrics, Preview, PreviewKind, Progress, format_eta
from napari_dlmicro.state.code_trust import CodeTrust
from napari_dlmicro.state.denoise import (
    RESTORING_KINDS,
    Placement,
    field_around,
    output_placement,
    placeholder,
    preview_placement,
    result_text,
)
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.widgets._code_trust import trust_for
from napari_dlmicro.widgets._denoise_form import DenoiseSettingsForm
from napari_dlmicro.widgets._dock import DockPanel, narrow_combo
from napari_dlmicro.widgets._export_dialog import ModelExporter
from napari_dlmicro.widgets._layers import image_next_to
from napari_dlmicro.widgets._lazy_layers import held_data
from napari_dlmicro.widgets._line_plot import LinePlot, Panel
from napari_dlmicro.widgets._napari_compat import camera
from napari_dlmicro.widgets._status_line import StatusLine
from napari_dlmicro.widgets._warm_up import warm_up
from napari_dlmicro.workers import JobHandle, start_job

NONE = "—"


class DenoiseWidget(DockPanel):
    """Dock widget: pick layers, train (live loss, ETA, preview), cancel, apply, compare."""

    def __init__(self, napari_viewer, parent=None) -> None:
        super().__init__(napari_viewer, parent)
        self.model = None
        self.code_trust = CodeTrust()
        self.job: JobHandle | None = None
        self._t_start = 0.0
        self._folder: Path | None = None
        self._preview_geometry = None
        self._placeholder: str | None = None
        self.image, self.target, self.truth = (narrow_combo(QComboBox()) for _ in range(3))
        self.form = DenoiseSettingsForm(self.target)
        self.kind, self.axes, self.name = self.form.kind, self.form.axes, self.form.name
        self.train_btn, self.cancel_btn = QPushButton("Train"), QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.status = StatusLine("idle")
        self.plot = LinePlot((Panel((Metric.TRAIN_LOSS, Metric.VAL_LOSS), ("train", "validation"), log_y=True),))
        self.models = narrow_combo(QComboBox())
        self.load_btn, self.apply_btn = QPushButton("Load model"), QPushButton("Apply to layer")
        self.package_btn = QPushButton("Load package…", toolTip="An image-to-image bioimage.io model package "
                                       "(.zip or its rdf.yaml)")
        self.folder_btn = QPushButton("Apply to folder…")
        self.quality = QLabel("", wordWrap=True)
        self._build()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self._refresh_models()
        warm_up(("optimiser", "onnx export"), ("safetensors.torch",))

    # the form's fields most used from outside, by their short names
    minutes = property(lambda self: self.form.minutes)
    epochs = property(lambda self: self.form.epochs)
    patch = property(lambda self: self.form.patch)
    batch = property(lambda self: self.form.batch)
    channels = property(lambda self: self.form.channels)

    def _build(self) -> None:
        top = QFormLayout()
        top.addRow("image", self.image)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_btn)
        buttons.addWidget(self.cancel_btn)
        apply_form = QFormLayout()
        apply_form.addRow("model", self.models)
        self.exporter = ModelExporter(self, self._chosen_model, "Denoising", self.status.setText)
        apply_form.addRow(self.exporter.button)
        self.engine_combo = QComboBox(toolTip=ENGINE_SETTING.help)
        self.engine_combo.addItems(engine_choices())
        apply_form.addRow("engine", bind(self.form.state, "engine", self.engine_combo))
        self.views_combo = QComboBox(toolTip=VIEWS_SETTING.help)
        self.views_combo.addItems(VIEWS_SETTING.choices)
        apply_form.addRow("test-time views", bind(self.form.state, "views", self.views_combo))
        apply_form.addRow("ground truth", self.truth)
        apply_row = QHBoxLayout()
        for b in (self.load_btn, self.package_btn, self.apply_btn, self.folder_btn):
            apply_row.addWidget(b)
        self.body.addLayout(top)
        self.body.addWidget(self.form)
        self.body.addLayout(buttons)
        self.body.addWidget(self.status)
        self.body.addWidget(self.plot)
        self.body.addLayout(apply_form)
        self.body.addLayout(apply_row)
        self.body.addWidget(self.quality)
        self.body.addStretch(1)
        self.train_btn.clicked.connect(self.train)
        self.cancel_btn.clicked.connect(self.cancel)
        self.load_btn.clicked.connect(lambda: self.load_model())
        self.package_btn.clicked.connect(self._load_package_dialog)
        self.apply_btn.clicked.connect(self.apply)
        self.folder_btn.clicked.connect(self._apply_folder_dialog)

    def _refresh_layers(self, *_: Any) -> None:
        names = [layer.name for layer in self.viewer.layers
                 if isinstance(layer, Image) and not layer.name.endswith(("[preview]", "[denoised]"))]
        for combo, optional in ((self.image, False), (self.target, True), (self.truth, True)):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(([NONE] if optional else []) + names)
            if current in names or current == NONE:
                combo.setCurrentText(current)
            combo.blockSignals(False)

    def _refresh_models(self) -> None:
        self.models.clear()
        self.models.addItems([m.name for m in list_models() if m.kind in RESTORING_KINDS])

    def _chosen_model(self) -> str | None:
        return self.models.currentText() or None

    def on_store_changed(self, folder: str) -> None:
        """A model was saved: list it."""
        self._refresh_models()

    def _layer(self, combo: QComboBox):
        name = combo.currentText()
        return None if name in ("", NONE) else self.viewer.layers[name]

    def _axes(self) -> str | None:
        return self.axes.text().strip().upper() or None

    def _busy(self, busy: bool) -> None:
        self.train_btn.setEnabled(not busy)
        self.apply_btn.setEnabled(not busy)
        self.cancel_btn.setEnabled(busy)

    # ------------------------------------------------------------ training
    def _preview_spec(self, layer, axes: str | None):
        """(sample index, region) of the field in view: a crop around the camera centre."""
        data = layer.data
        axes = axes or default_axes(data.ndim, data.shape)
        cam = camera(self.viewer)
        centre = layer.world_to_data(cam.center if len(cam.center) == data.ndim else self.viewer.dims.point)
        spatial, region = field_around(data.shape, axes, centre)
        t = int(self.viewer.dims.current_step[axes.index("T")]) if "T" in axes else 0
        channels = self.form.state.values.raw().get("channels", "independent")
        n_c = data.shape[axes.index("C")] if "C" in axes and channels == "independent" else 1
        return (t * n_c, region), spatial

    def train(self) -> None:
        """Start training on the chosen layer(s), or on CARE pairs from two folders."""
        state = self.form.state
        kind, folders = state.kind, state.pair_folders if state.kind == "care" else None
        layer = self._layer(self.image)
        if layer is None and folders is None:
            or_folders = ", or CARE pairs from folders" if kind == "care" else ""
            self.status.setText("pick an image layer first" + or_folders)
            return
        target = self._layer(self.target) if kind == "care" and folders is None else None
        if kind == "care" and folders is None and target is None:
            self.status.setText("CARE learns from pairs: pick the target layer, or pairs from folders")
            return
        try:
            args = state.job_args()
            image = held_data(layer, "train on") if folders is None else None
            targets = [held_data(target, "train on")] if target is not None else None
        except UserError as exc:
            self.status.setText(str(exc))
            return
        self.form.save()
        self._folder = folder = store_dir() / args["name"]
        axes = self._axes()
        if folders is None:
            data = RestorationData([image], targets, axes)
            preview, spatial = self._preview_spec(layer, axes)
            self._preview_geometry = (layer, preview[1], spatial)
            self._start_preview(image, preview[1], spatial)

            def job(token):
                return (yield from train_job(kind, data, out=folder, preview=preview, token=token, **args))
        else:
            self._preview_geometry = None

            def job(token):  # the pairs are read in the worker, not on the GUI thread
                data = read_training_data("care", folders[0], targets=folders[1], axes=axes)
                return (yield from train_job("care", data, out=folder, token=token, **args))
        self.plot.clear()
        self._busy(True)
        self._t_start = time.perf_counter()
        self.job = self.track(start_job(job, title=f"train {kind}", on_event=self._on_event,
                                        on_result=self._on_trained, on_error=self._on_error,
                                        on_finished=self._on_train_finished))

    def _start_preview(self, image: np.ndarray, region: tuple[slice, ...], spatial: list[int]) -> None:
        """Show the raw field in view as the preview layer now; training replaces it as the model sharpens."""
        layer = self._preview_geometry[0]
        index = tuple(region[spatial.index(i)] if i in spatial else int(self.viewer.dims.current_step[i])
                      for i in range(image.ndim))
        crop = np.asarray(image[index], np.float32)
        if crop.ndim != len(spatial):
            return  # joint channels: the preview arrives with the first snapshot
        self._show_preview(Preview(crop, region, PreviewKind.IMAGE))
        self.viewer.layers.selection.active = layer

    def cancel(self) -> None:
        """Stop the running job now; a training run keeps the best model saved so far."""
        if self.job is not None:
            self.job.cancel()

    def _on_event(self, ev) -> None:
        if self.job is None:  # a late event of a finished (or cancelled) job must not overwrite its outcome
            return
        if isinstance(ev, Progress):
            self.status.setText(f"{ev.message} — {ev.fraction:.0%}, ETA {format_eta(ev.eta_s)}")
        elif isinstance(ev, Metrics) and Metric.VAL_LOSS in ev.values:
            self.plot.add(ev.step, ev.values)
        elif isinstance(ev, Preview) and ev.kind is PreviewKind.IMAGE and self._preview_geometry is not None \
                and len(ev.region) == len(self._preview_geometry[2]):
            self._show_preview(ev)

    def _show_preview(self, ev: Preview) -> None:
        if self._preview_geometry is None:
            return
        layer, region, spatial = self._preview_geometry
        # an upsampling model's preview covers the same region in its finer pixels
        scale, translate = preview_placement([layer.scale[i] for i in spatial], [layer.translate[i] for i in spatial],
                                             region, ev.region)
        name = f"{layer.name} [preview]"
        if name in self.viewer.layers:
            prev = self.viewer.layers[name]
            prev.data, prev.scale, prev.translate = ev.data, scale, translate
        else:
            self.viewer.add_image(ev.data, name=name, scale=scale, translate=translate,
                                  contrast_limits=tuple(layer.contrast_limits))

    def _on_trained(self, result) -> None:
        self.model = result.model
        if self.job is None:  # cancelled: the dock had moved on; the model it kept is the one saved
            self.status.setText(f"cancelled: the best model so far is saved in {result.folder}")
            return
        self.status.setText(f"trained: validation loss {result.best_val_loss:.4g}; saved to {result.folder}")

    def _on_error(self, message: str) -> None:
        self.status.setText(message)

    def _on_train_finished(self, cancelled: bool) -> None:
        self._busy(False)
        self.job = None
        if cancelled and self._folder is not None and (self._folder / "config.json").is_file():
            try:
                self.model = load_restoration(self._folder)
            except UserError as exc:  # the training thread, still ending, hands its model over when done
                self.status.setText(f"cancelled; the saved model could not be loaded yet ({exc})")
                return
            self.status.setText(f"cancelled: the best model so far is saved in {self._folder}")
        elif cancelled:
            self.status.setText("cancelled before the first validation: no model saved yet")

    # ------------------------------------------------------------ applying
    def load_model(self, ref: str | None = None) -> None:
        """Load ``ref`` (a bioimage.io package, a model folder; default: the model chosen in the list).

        A package that would run its own Python code loads only after the user
        confirmed it (once per source file); on No nothing is loaded.
        """
        ref = ref or self.models.currentText()
        trust = trust_for(self, self.code_trust, ref, "Denoising")
        if trust is None:
            return  # its code may not run: the dock keeps the model it had
        try:
            self.model = load_restorer(ref, None, trust)
            self.status.setText(f"loaded {Path(ref).name} ({self.model.kind})")
        except UserError as exc:
            self.status.setText(str(exc))

    def _load_package_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "bioimage.io package", str(Path.home()),
                                              "bioimage.io package (*.zip *.yaml)")
        if path:
            self.load_model(path)

    def apply(self) -> None:
        """Denoise the chosen layer (every time point) into a float32 layer next to it."""
        layer = self._layer(self.image)
        if layer is None or self.model is None:
            self.status.setText("train or load a model, and pick an image layer")
            return
        model, axes, truth = self.model, self._axes(), self._layer(self.truth)
        try:
            data = held_data(layer, "denoise")
            truth_data = held_data(truth, "score against") if truth is not None and truth is not layer else None
            engine, tta = self.form.state.apply_engine(), self.form.state.apply_tta()
        except UserError as exc:
            self.status.setText(str(exc))
            return
        self.form.state.remember()
        try:
            placed = output_placement(model, data.shape, layer.scale, layer.translate, axes)
        except UserError as exc:
            self.status.setText(str(exc))
            return
        name = f"{layer.name} [denoised]"
        self._placeholder = None if name in self.viewer.layers else name  # removed again if no result comes
        if self._placeholder is not None:  # a re-run keeps showing the previous result until the new one
            # at the click: adding a layer holds the viewer ~0.1 s, better then than when the result comes
            image_next_to(self.viewer, layer, name, placeholder(placed), tuple(layer.contrast_limits), placed)
        self._busy(True)
        self.job = self.track(start_job(
            lambda token: apply_job(model, data, axes, truth_data, tta=tta, token=token,
                                    engine=engine),
            title="denoise", on_event=self._on_event, on_result=lambda res: self._show_result(layer, res, placed),
            on_error=self._on_error, on_finished=self._on_apply_finished))

    def _on_apply_finished(self, cancelled: bool) -> None:
        self._busy(False)
        self.job = None
        placeholder, self._placeholder = self._placeholder, None
        if placeholder is not None and placeholder in self.viewer.layers:
            self.viewer.layers.remove(placeholder)
        if cancelled:
            self.status.setText("cancelled: the layer keeps its previous result")

    def _show_result(self, layer, res, placed: Placement) -> None:
        """Put the output over its input (the input's scale, divided where the model upsamples), or update it
        in place on a re-run."""
        if self.job is None:
            return  # cancelled meanwhile
        image_next_to(self.viewer, layer, f"{layer.name} [denoised]", res.image, res.limits, placed)
        self._placeholder = None
        preview = f"{layer.name} [preview]"
        if preview in self.viewer.layers:  # the trained model's output replaces the training snapshot
            self.viewer.layers[preview].visible = False
        self.status.setText(f"denoised {layer.name}")
        self.quality.setText(result_text(res))

    def _apply_folder_dialog(self) -> None:
        src = QFileDialog.getExistingDirectory(self, "Folder of images to denoise")
        dst = QFileDialog.getExistingDirectory(self, "Output folder") if src else ""
        if src and dst:
            self.apply_to_folder(src, dst)

    def apply_to_folder(self, src: str, dst: str) -> JobHandle | None:
        """Denoise every TIFF of ``src`` into ``dst/<stem>_denoised.tif`` in a worker, file by file."""
        if self.model is None:
            self.status.setText("train or load a model first")
            return None
        try:
            files = tiff_files([src])
        except UserError as exc:
            self.status.setText(str(exc))
            return None
        try:
            tta = self.form.state.apply_tta()
        except UserError as exc:
            self.status.setText(str(exc))
            return None
        model, axes, engine = self.model, self._axes(), self.form.state.engine
        self._busy(True)
        self.job = self.track(start_job(
            lambda token: denoise_files_job(files, dst, model, axes, tta=tta, token=token, engine=engine),
            title="denoise folder",
            on_event=self._on_event, on_result=lambda written: self.status.setText(
                f"{len(written)} file(s) written to {dst}"),
            on_error=self._on_error, on_finished=self._on_folder_finished))
        return self.job

    def _on_folder_finished(self, cancelled: bool) -> None:
        self._busy(False)
        self.job = None
        if cancelled:
            self.status.setText("cancelled: the files already written are kept")
