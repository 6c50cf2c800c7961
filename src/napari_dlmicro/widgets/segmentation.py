"""The Segmentation dock: pick an image and a model, preview in view, run, measure.

A thin view of :class:`...state.segmentation.SegmentationState`: the fields
edit the state, the state builds the job, the job's events fill a Labels
layer tile by tile.
"""
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
)

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.segment import SegmentJob, SegmentResult, segment_job
from napari_dlmicro.core.labels.measure import write_csv
from napari_dlmicro.core.models.catalogue import CATALOGUE
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, engine_choices
from napari_dlmicro.core.models.registry import Task, kinds
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.devices import DEVICE_CHOICES
from napari_dlmicro.core.runtime.events import Preview, PreviewKind, Progress
from napari_dlmicro.state.code_trust import CodeTrust
from napari_dlmicro.state.segmentation import JOB_SETTINGS, SegmentationState, layer_axes, model_kind
from napari_dlmicro.widgets._bind import bind, spin_for
from napari_dlmicro.widgets._code_trust import trust_for
from napari_dlmicro.widgets._dock import DockPanel, narrow_combo
from napari_dlmicro.widgets._export_dialog import ModelExporter
from napari_dlmicro.widgets._layers import (
    ensure_labels_layer,
    output_name,
    result_bands,
    widen_labels,
    write_labels_region,
)
from napari_dlmicro.widgets._lazy_layers import is_big
from napari_dlmicro.widgets._model_choice import confirm_cpu_cost
from napari_dlmicro.widgets._napari_compat import camera
from napari_dlmicro.widgets._segment_big import BigImageRuns, big_image_section
from napari_dlmicro.widgets._settings_form import SettingsForm
from napari_dlmicro.widgets._status_line import StatusLine
from napari_dlmicro.widgets._warm_up import warm_up
from napari_dlmicro.widgets.view_region import visible_region
from napari_dlmicro.workers import JobHandle, start_job

SEGMENTING_KINDS = tuple(k.name for k in kinds(Task.SEGMENT))  # model kinds the dock lists
LIVE_DELAY_MS = 400


class SegmentationWidget(DockPanel):
    """Dock: image + model -> Labels layer (tile by tile) + measurements."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.state = SegmentationState()
        self.code_trust = CodeTrust()
        self.handle: JobHandle | None = None
        self.result: SegmentResult | None = None
        self._out_layer: Labels | None = None
        self._bands: list = []
        self._finished_pending: bool | None = None
        self._remembered = self.state.restore()
        self._build()
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._live_timer = QTimer(self, singleShot=True, interval=LIVE_DELAY_MS,
                                  timeout=lambda: self.preview(asking=False))
        camera(self.viewer).events.center.connect(self._schedule_live)
        camera(self.viewer).events.zoom.connect(self._schedule_live)
        self.viewer.dims.events.current_step.connect(self._schedule_live)
        offload.warm_up()
        warm_up(("onnx export",))

    # -- layout -------------------------------------------------------------
    def _build(self) -> None:
        s = self.state
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.image_combo = narrow_combo(QComboBox(toolTip="Image layer to segment"))
        self.image_combo.currentIndexChanged.connect(self._on_image_changed)
        form.addRow("Image", self.image_combo)
        self.axes_edit = bind(s, "axes", QLineEdit(toolTip="One letter per dimension: T (time), Z, C (channel), Y, X"))
        form.addRow("Axes", self.axes_edit)
        self.channel_spin = QSpinBox(toolTip="Channel for one-channel models (all: every channel)")
        self.channel_spin.setRange(-1, 255)
        self.channel_spin.setSpecialValueText("all")
        form.addRow("Channel", bind(s, "channel", self.channel_spin))
        row = QHBoxLayout()
        self.model_combo = narrow_combo(QComboBox(toolTip="Pretrained catalogue and stored models"))
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        browse = QPushButton("Browse…", toolTip="A model folder (ours or StarDist's) or a Cellpose weights file")
        browse.clicked.connect(self._browse_model)
        row.addWidget(self.model_combo, 1)
        row.addWidget(browse)
        form.addRow("Model", row)
        self.exporter = ModelExporter(self, self.model_combo.currentData, "Segmentation", self._show_status)
        form.addRow(self.exporter.button)
        self.settings_form = SettingsForm(s.model_settings, none_text="model default")
        form.addRow(self.settings_form)
        self.low_spin = bind(s, "norm_low", spin_for(JOB_SETTINGS["norm_low"], QDoubleSpinBox(decimals=1)))
        self.high_spin = bind(s, "norm_high", spin_for(JOB_SETTINGS["norm_high"], QDoubleSpinBox(decimals=1)))
        norm = QHBoxLayout()
        norm.addWidget(self.low_spin)
        norm.addWidget(self.high_spin)
        form.addRow("Normalise (%)", norm)
        self.tile_spin = spin_for(JOB_SETTINGS["tile"], QSpinBox())
        self.tile_spin.setSpecialValueText("whole image")
        form.addRow("Tile", bind(s, "tile", self.tile_spin))
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICE_CHOICES)
        form.addRow("Device", bind(s, "device", self.device_combo))
        self.engine_combo = QComboBox(toolTip=ENGINE_SETTING.help)
        self.engine_combo.addItems(engine_choices())
        form.addRow("Engine", bind(s, "engine", self.engine_combo))
        self.live_check = bind(s, "live", QCheckBox("Live preview of the view",
                                                    toolTip="Re-segment what is in view when you pan, zoom or "
                                                            "change plane"))
        form.addRow(self.live_check)
        self.big_section = big_image_section(s.blockwise)
        form.addRow(self.big_section)
        self.big = BigImageRuns(self, s, self.big_section, self._go_idle)

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
        self.count_label = QLabel("", wordWrap=True)
        self.export_button = QPushButton("Export CSV…", enabled=False)
        self.export_button.clicked.connect(self._export_csv)
        s.status.events.text.connect(self._show_status)
        s.status.events.fraction.connect(self._show_fraction)
        s.status.events.running.connect(self._show_running)
        s.events.count.connect(self._show_count)

        for part in (form, buttons):
            self.body.addLayout(part)
        for w in (self.progress, self.status, self.count_label, self.export_button):
            self.body.addWidget(w)
        self.body.addStretch(1)
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

    def on_store_changed(self, folder: str) -> None:
        """A model was saved: list it."""
        self._refresh_models()

    def _on_image_changed(self, *_) -> None:
        layer = self._image_layer()
        if layer is None:
            return
        self.state.image = layer.name
        axes = layer.metadata.get("axes") if isinstance(layer.metadata, dict) else None
        self.state.axes = layer_axes(axes, layer.data.ndim, layer.rgb)

    def _on_model_changed(self, *_) -> None:
        ref = self.model_combo.currentData()
        if ref is None:
            return
        try:
            self.state.choose_model(ref, self._remembered.get(f"settings:{model_kind(ref)}"))
        except UserError as exc:
            show_error(f"Segmentation: {exc}")

    def _browse_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder")
        if path:
            self._refresh_models(select=path)

    def _remember(self) -> None:
        self.state.remember()

    def _image_layer(self) -> Image | None:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None  # noqa: SIM401 (napari's LayerList has no .get)

    # -- running -------------------------------------------------------------
    def build_job(self, layer=None, region=None, trust_code: bool = False) -> SegmentJob:
        """A job for ``layer`` (default: the chosen one) from the dock's settings."""
        layer = layer if layer is not None else self._image_layer()
        if layer is None:
            labels = [lay.name for lay in self.viewer.layers if isinstance(lay, Labels)]
            hint = f" ('{labels[0]}' is a Labels layer: masks or annotations, not an image)" if labels else ""
            raise UserError(f"there is no image layer to segment{hint}", "open an image, or File > Open Sample")
        if isinstance(layer, Labels) or not isinstance(layer, Image):
            raise UserError(f"'{layer.name}' is a {type(layer).__name__} layer, not an image",
                            "choose an Image layer as input; Labels layers hold masks or annotations")
        return self.state.build_job(layer.data, tuple(layer.scale), region, trust_code)

    def run(self) -> None:
        """Segment the whole image."""
        self._start(region=None)

    def preview(self, asking: bool = True) -> None:
        """Segment only the current plane and the visible field (``asking=False``: a live preview, which never
        asks whether a model's own code may run)."""
        layer = self._image_layer()
        if layer is None:
            return self._start(region=None, asking=asking)
        self._start(region=visible_region(self.viewer, layer, self.state.axes.strip().upper()), asking=asking)

    def _schedule_live(self, *_) -> None:
        if self.state.live and self.handle is None:
            self._live_timer.start()

    def _start(self, region, asking: bool = True) -> None:
        if self.handle is not None:
            show_info("A segmentation is already running: cancel it first.")
            return
        trust = trust_for(self, self.code_trust, self.state.model, "Segmentation", asking)
        if trust is None:
            return  # the model's own code may not run: nothing is loaded, the dock stays as it was
        layer = self._image_layer()
        if layer is not None and is_big(layer):
            self.state.remember()
            handle = self.big.run(layer, trust) if region is None else self.big.preview(layer, region, trust)
            if handle is not None:
                self._tiles_shown = 0
                self.handle = self.track(handle)
            return
        try:
            job = self.build_job(layer, region, trust)
        except UserError as exc:
            show_error(f"Segmentation: {exc}")
            return
        self.state.remember()
        if not confirm_cpu_cost(self, job):
            return
        name = output_name(layer.name, str(self.model_combo.currentText()).split()[0])
        self._pending = (layer, name)
        # The layer is made (or cleared) now, at the click, so nothing heavy happens while tiles stream in.
        self._out_layer = ensure_labels_layer(self.viewer, name, self.state.output_shape(layer.data.shape), layer,
                                              np.uint16)
        if region is None and self._out_layer.data.any():
            self._out_layer.data[...] = 0
            self._out_layer.refresh()
        self.state.status.start("Loading model…" if region is None else "Previewing the view…")
        self._tiles_shown = 0
        started: dict[str, JobHandle] = {}
        handle = start_job(lambda token: segment_job(job, token), title="Segmentation", on_event=self._on_event,
                           on_result=lambda result: self._on_result(result, started.get("handle")),
                           on_error=lambda msg: self.state.status.idle(f"Error: {msg}"),
                           on_finished=self._on_finished)
        self.handle = started["handle"] = self.track(handle)

    def cancel(self) -> None:
        """Stop the running job now; finished tiles stay in the layer, and the dock is usable at once."""
        if self.handle is not None:
            self.handle.cancel()

    def _show_status(self, text: str) -> None:
        self.status.setText(text)

    def _show_fraction(self, fraction: float) -> None:
        self.progress.setValue(int(fraction * 1000))

    def _show_count(self, text: str) -> None:
        self.count_label.setText(text)

    def _show_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.preview_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def _on_event(self, ev) -> None:
        if isinstance(ev, Progress):
            self.state.status.progress(ev)
        elif isinstance(ev, Preview) and ev.kind is PreviewKind.LABELS:
            self._show_tile(ev)

    def _show_tile(self, ev: Preview) -> None:
        out = self._out_layer
        if out is None:
            return
        widen_labels(out, int(ev.data.max(initial=0)))
        self._tiles_shown += 1
        current = out.data[ev.region]
        write_labels_region(out, ev.region, np.where(ev.data > 0, ev.data, current).astype(out.data.dtype, copy=False))

    def _on_result(self, result: SegmentResult, handle: JobHandle | None) -> None:
        if handle is None or handle is not self.handle or handle.cancelled:
            return  # a cancelled run's result: the dock has moved on
        self.result = result
        out = self._out_layer
        if out is None or out.data.shape != result.full_shape:
            layer, name = self._pending
            out = self._out_layer = ensure_labels_layer(self.viewer, name, result.full_shape, layer, np.uint16)
        widen_labels(out, int(result.labels.max(initial=0)))
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
        in_view = result.placement != tuple(slice(0, s) for s in result.full_shape)
        self.state.count = self.state.summary(result.n_objects, result.class_map, in_view, result.model_name)
        self.export_button.setEnabled(result.table is not None)
        for note in result.notes:
            show_info(note)

    def _on_finished(self, cancelled: bool) -> None:
        if self._bands and not cancelled:
            self._finished_pending = cancelled
            return
        self._bands = []
        self._go_idle(cancelled)

    def _go_idle(self, cancelled: bool) -> None:
        self.handle = None
        if cancelled:
            n = self._tiles_shown
            kept = f"{n} finished tile{'s' if n != 1 else ''} kept in the layer" if n else "nothing had finished"
            self.state.status.idle(f"Cancelled: {kept}")
        elif not self.state.status.text.startswith("Error"):
            self.state.status.idle("Done", done=True)
        else:
            self.state.status.idle(self.state.status.text)

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
