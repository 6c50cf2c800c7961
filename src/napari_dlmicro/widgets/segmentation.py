"""The Segmentation dock: pick an image and a model, preview in view, run, measure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas  # noqa: F401 - napari imports it on the first Labels layer; pay that at dock start, not at Run
from napari.layers import Image, Labels
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
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

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.axes import default_axes
from napari_dlmicro.core.jobs.segment import SegmentJob, SegmentResult, segment_job
from napari_dlmicro.core.labels.measure import write_csv
from napari_dlmicro.core.models.catalogue import CATALOGUE
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.devices import DEVICE_CHOICES
from napari_dlmicro.core.runtime.events import Preview, Progress, format_eta
from napari_dlmicro.widgets._layers import (
    ensure_labels_layer,
    output_name,
    result_bands,
    write_labels_region,
)
from napari_dlmicro.widgets._model_choice import confirm_cpu_cost, model_kind, settings_for
from napari_dlmicro.widgets._settings_form import SettingsForm
from napari_dlmicro.widgets._status_line import StatusLine
from napari_dlmicro.widgets.view_region import camera, visible_region
from napari_dlmicro.workers import JobHandle, start_job

SECTION = "segmentation"
SEGMENTING_KINDS = ("stardist", "cellpose", "semantic")  # model kinds the dock lists


class SegmentationWidget(QWidget):
    """Dock: image + model -> Labels layer (tile by tile) + measurements."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.handle: JobHandle | None = None
        self.result: SegmentResult | None = None
        self._out_layer: Labels | None = None
        self._bands: list = []
        self._finished_pending: bool | None = None
        self._remembered = load_settings(SECTION)
        self._build()
        self._restore()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._live_timer = QTimer(self, singleShot=True, interval=400, timeout=self.preview)
        camera(self.viewer).events.center.connect(self._schedule_live)
        camera(self.viewer).events.zoom.connect(self._schedule_live)
        self.viewer.dims.events.current_step.connect(self._schedule_live)
        self.destroyed.connect(lambda *_: self.cancel())
        offload.warm_up()

    # -- layout -------------------------------------------------------------
    def _build(self) -> None:
        form = QFormLayout()
        self.image_combo = QComboBox(toolTip="Image layer to segment")
        self.image_combo.currentIndexChanged.connect(self._on_image_changed)
        form.addRow("Image", self.image_combo)
        self.axes_edit = QLineEdit(toolTip="One letter per dimension: T (time), Z, C (channel), Y, X")
        form.addRow("Axes", self.axes_edit)
        self.channel_spin = QSpinBox(toolTip="Channel for one-channel models (-1: all channels)")
        self.channel_spin.setRange(-1, 64)
        self.channel_spin.setSpecialValueText("all")
        self.channel_spin.setValue(-1)
        form.addRow("Channel", self.channel_spin)
        row = QHBoxLayout()
        self.model_combo = QComboBox(toolTip="Pretrained catalogue and stored models")
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        browse = QPushButton("Browse…", toolTip="A model folder (ours or StarDist's) or a Cellpose weights file")
        browse.clicked.connect(self._browse_model)
        row.addWidget(self.model_combo, 1)
        row.addWidget(browse)
        form.addRow("Model", row)
        self.settings_form = SettingsForm()
        form.addRow(self.settings_form)
        self.low_spin = QDoubleSpinBox(decimals=1, minimum=0, maximum=100, value=1.0, singleStep=0.5)
        self.high_spin = QDoubleSpinBox(decimals=1, minimum=0, maximum=100, value=99.8, singleStep=0.1)
        norm = QHBoxLayout()
        norm.addWidget(self.low_spin)
        norm.addWidget(self.high_spin)
        form.addRow("Normalise (percentiles)", norm)
        self.tile_spin = QSpinBox(minimum=0, maximum=8192, singleStep=128, value=1024,
                                  toolTip="Tile size in pixels (0: whole image at once)")
        self.tile_spin.setSpecialValueText("whole image")
        form.addRow("Tile", self.tile_spin)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        form.addRow("Device", self.device_combo)
        self.live_check = QCheckBox("Live preview of the view", toolTip="Re-segment what is in view when you pan, zoom or change plane")
        form.addRow(self.live_check)

        buttons = QHBoxLayout()
        self.preview_button = QPushButton("Preview view", toolTip="Segment only the current plane and visible field")
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.preview_button.clicked.connect(self.preview)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        for b in (self.preview_button, self.run_button, self.cancel_button):
            buttons.addWidget(b)
        self.progress = QProgressBar(maximum=1000)
        self.status = StatusLine("Idle")
        self.count_label = QLabel("")
        self.export_button = QPushButton("Export CSV…", enabled=False)
        self.export_button.clicked.connect(self._export_csv)

        outer = QVBoxLayout(self)
        outer.addLayout(form)
        outer.addLayout(buttons)
        outer.addWidget(self.progress)
        outer.addWidget(self.status)
        outer.addWidget(self.count_label)
        outer.addWidget(self.export_button)
        outer.addStretch(1)
        self._refresh_layers()
        self._refresh_models()

    def _refresh_layers(self, *_) -> None:
        current = self.image_combo.currentText()
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        for layer in self.viewer.layers:
            if isinstance(layer, Image):
                self.image_combo.addItem(layer.name)
        if current:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        self._on_image_changed()

    def _refresh_models(self, select: str | None = None) -> None:
        select = select or self.model_combo.currentData() or self._remembered.get("model")
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for m in list_models():
            if m.kind in SEGMENTING_KINDS:
                label = m.name + ("" if m.available else "  (downloads on first use)")
                self.model_combo.addItem(label, m.name if m.name in CATALOGUE else m.location)
        if select and self.model_combo.findData(select) < 0:
            self.model_combo.addItem(Path(select).name, select)
        if select:
            self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(select)))
        self.model_combo.blockSignals(False)
        self._on_model_changed()

    def _on_image_changed(self, *_) -> None:
        layer = self._image_layer()
        if layer is None:
            return
        axes = layer.metadata.get("axes") if isinstance(layer.metadata, dict) else None
        axes = (axes or "").replace("C", "").replace("S", "")
        if len(axes) != layer.data.ndim - (1 if layer.rgb else 0):
            axes = default_axes(layer.data.ndim - (1 if layer.rgb else 0)).replace("C", "")
        self.axes_edit.setText(axes + ("C" if layer.rgb else ""))

    def _on_model_changed(self, *_) -> None:
        ref = self.model_combo.currentData()
        if ref is None:
            return
        kind = model_kind(ref)
        self.settings_form.set_settings(settings_for(kind), self._remembered.get(f"settings:{kind}"))

    def _browse_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder")
        if path:
            self._refresh_models(select=path)

    # -- state ---------------------------------------------------------------
    def _restore(self) -> None:
        r = self._remembered
        self.low_spin.setValue(r.get("norm_low", 1.0))
        self.high_spin.setValue(r.get("norm_high", 99.8))
        self.tile_spin.setValue(int(r.get("tile", 1024)))
        self.device_combo.setCurrentText(r.get("device", "auto"))

    def _remember(self) -> None:
        kind = model_kind(self.model_combo.currentData() or "")
        self._remembered.update(
            model=self.model_combo.currentData(), norm_low=self.low_spin.value(), norm_high=self.high_spin.value(),
            tile=self.tile_spin.value(), device=self.device_combo.currentText(),
            **{f"settings:{kind}": self.settings_form.raw()},
        )
        save_settings(SECTION, self._remembered)

    def _image_layer(self) -> Image | None:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    # -- running -------------------------------------------------------------
    def build_job(self, layer=None, region=None) -> SegmentJob:
        """A job for ``layer`` (default: the chosen one) from the dock's settings."""
        layer = layer if layer is not None else self._image_layer()
        if layer is None:
            labels = [lay.name for lay in self.viewer.layers if isinstance(lay, Labels)]
            hint = f" ('{labels[0]}' is a Labels layer: masks or annotations, not an image)" if labels else ""
            raise UserError(f"there is no image layer to segment{hint}", "open an image, or File > Open Sample")
        if isinstance(layer, Labels) or not isinstance(layer, Image):
            raise UserError(f"'{layer.name}' is a {type(layer).__name__} layer, not an image",
                            "choose an Image layer as input; Labels layers hold masks or annotations")
        ref = self.model_combo.currentData()
        if not ref:
            raise UserError("no model is chosen", "pick a model from the list or Browse… to a model folder")
        axes = self.axes_edit.text().strip().upper() or None
        spatial = [a for a in (axes or "") if a in "ZYX"]
        scale = dict(zip(spatial, tuple(layer.scale)[-len(spatial):])) if spatial else None
        channel = self.channel_spin.value()
        return SegmentJob(
            image=layer.data, model=ref, axes=axes, channel=None if channel < 0 else channel,
            settings=self.settings_form.values(), tile=self.tile_spin.value() or None,
            device=self.device_combo.currentText(), norm_low=self.low_spin.value(),
            norm_high=self.high_spin.value(), region=region, scale=scale,
        )

    def run(self) -> None:
        """Segment the whole image."""
        self._start(region=None)

    def preview(self) -> None:
        """Segment only the current plane and the visible field."""
        layer = self._image_layer()
        if layer is None:
            return self._start(region=None)
        self._start(region=visible_region(self.viewer, layer, self.axes_edit.text().strip().upper()))

    def _schedule_live(self, *_) -> None:
        if self.live_check.isChecked() and self.handle is None:
            self._live_timer.start()

    def _start(self, region) -> None:
        if self.handle is not None:
            show_info("A segmentation is already running: cancel it first.")
            return
        layer = self._image_layer()
        try:
            job = self.build_job(layer, region)
        except UserError as exc:
            show_error(f"Segmentation: {exc}")
            return
        self._remember()
        if not confirm_cpu_cost(self, self.device_combo.currentText(), job):
            return
        name = output_name(layer.name, str(self.model_combo.currentText()).split()[0])
        self._pending = (layer, name)
        # The layer is made (or cleared) now, at the click, so nothing heavy happens while tiles stream in.
        self._out_layer = ensure_labels_layer(self.viewer, name, self._output_shape(layer), layer, np.uint16)
        if region is None and self._out_layer.data.any():
            self._out_layer.data[...] = 0
            self._out_layer.refresh()
        self._set_running(True, "Loading model…" if region is None else "Previewing the view…")
        self.handle = start_job(
            lambda token: segment_job(job, token), title="Segmentation",
            on_event=self._on_event, on_result=self._on_result,
            on_error=lambda msg: self.status.setText(f"Error: {msg}"), on_finished=self._on_finished,
        )

    def cancel(self) -> None:
        """Stop the running job; finished tiles stay in the layer."""
        if self.handle is not None:
            self.status.setText("Cancelling…")
            self.handle.cancel()

    def _set_running(self, running: bool, text: str) -> None:
        self.run_button.setEnabled(not running)
        self.preview_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.status.setText(text)
        if running:
            self.progress.setValue(0)

    def _on_event(self, ev) -> None:
        if isinstance(ev, Progress):
            self.progress.setValue(int(ev.fraction * 1000))
            self.status.setText(f"{ev.message} — ETA {format_eta(ev.eta_s)}")
        elif isinstance(ev, Preview) and ev.kind == "labels":
            self._show_tile(ev)

    def _show_tile(self, ev: Preview) -> None:
        out = self._out_layer
        if out is None:
            return
        self._fit_dtype(int(ev.data.max(initial=0)))
        region = tuple(ev.region)
        current = out.data[region]
        write_labels_region(out, region, np.where(ev.data > 0, ev.data, current).astype(out.data.dtype, copy=False))

    def _fit_dtype(self, largest: int) -> None:
        out = self._out_layer
        if largest > np.iinfo(out.data.dtype).max:
            out.data = out.data.astype(np.uint32)

    def _output_shape(self, layer: Image) -> tuple[int, ...]:
        axes = self.axes_edit.text().strip().upper() or default_axes(layer.data.ndim, layer.data.shape)
        return tuple(n for a, n in zip(axes, layer.data.shape) if a not in "CS")

    def _on_result(self, result: SegmentResult) -> None:
        self.result = result
        out = self._out_layer
        if out is None or out.data.shape != result.full_shape:
            layer, name = self._pending
            out = self._out_layer = ensure_labels_layer(self.viewer, name, result.full_shape, layer, np.uint16)
        self._fit_dtype(int(result.labels.max(initial=0)))
        # Written band by band between events, so a large result never freezes the viewer.
        self._bands = list(result_bands(result.placement, result.labels.shape))
        self._apply_next_band()

    def _apply_next_band(self) -> None:
        if self._bands:
            dst, src = self._bands.pop(0)
            write_labels_region(self._out_layer, dst, self.result.labels[src].astype(self._out_layer.data.dtype))
        if self._bands:  # the rest after the event loop had a turn
            QTimer.singleShot(0, self._apply_next_band)
            return
        # the last band is in: summarise now, so a "finished" arriving in between finds nothing pending
        self._show_summary(self.result)
        if self._finished_pending is not None:
            cancelled, self._finished_pending = self._finished_pending, None
            self._go_idle(cancelled)

    def _show_summary(self, result: SegmentResult) -> None:
        if result.table is not None and not result.class_map:  # a class map's rows are regions, not its ids
            self._out_layer.features = result.table
        where = "in view" if result.placement != tuple(slice(0, s) for s in result.full_shape) else "in the image"
        what = ("class" if result.n_objects == 1 else "classes") if result.class_map else "objects"
        self.count_label.setText(f"{result.n_objects} {what} {where} ({result.model_name})")
        self.export_button.setEnabled(result.table is not None)
        for note in result.notes:
            show_info(note)

    def _on_finished(self, cancelled: bool) -> None:
        if self._bands:
            self._finished_pending = cancelled
            return
        self._go_idle(cancelled)

    def _go_idle(self, cancelled: bool) -> None:
        self.handle = None
        if cancelled:
            self._set_running(False, "Cancelled: finished tiles are kept in the layer")
        elif not self.status.text().startswith("Error"):
            self.progress.setValue(1000)
            self._set_running(False, "Done")
        else:
            self._set_running(False, self.status.text())

    def _export_csv(self) -> None:
        if self.result is None or self.result.table is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export measurements", "measurements.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def export_csv(self, path: str) -> None:
        """Write the last measurements to ``path``."""
        try:
            write_csv(path, self.result.table)
            show_info(f"Measurements written to {path}")
        except UserError as exc:
            show_error(f"Export: {exc}")
