"""The Segmentation dock on a big layer: a preview of the region in view, and a blockwise run on dask.

Preview view reads only the chunks of the region in view (with the model's
halo) and shows its labels as a small layer placed over the image. Run
segments block by block on local dask workers or a cluster by address; its
labels go into an OME-Zarr store that a lazy Labels layer shows, refreshed as
blocks are numbered, and that becomes the store's pyramid when the run ends.
A refresh re-reads (and redraws) what is in view on napari's thread, so the
layer is refreshed only for a numbered block that is in view, at most every
:data:`REFRESH_S`: the blocks of the first pass hold provisional ids in the
run folder, not in the store the layer shows.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QCollapsible

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseResult, blockwise_segment_job
from napari_dlmicro.core.jobs.segment_region import RegionResult, segment_region_job
from napari_dlmicro.core.runtime.events import OutputCreated, Preview, PreviewKind, Progress
from napari_dlmicro.state.blockwise import MAX_BLOCK, MIN_BLOCK, BlockwiseSettings
from napari_dlmicro.state.segmentation import SegmentationState
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.widgets._layers import show_labels
from napari_dlmicro.widgets._lazy_layers import finished_labels, lazy_image_of, store_labels_layer
from napari_dlmicro.widgets._napari_compat import reload_layer
from napari_dlmicro.widgets.view_region import overlaps_view
from napari_dlmicro.workers import JobHandle, start_job

REFRESH_S = 0.5  # the lazy labels layer re-reads what is in view at most this often


def big_image_section(settings: BlockwiseSettings) -> QCollapsible:
    """The collapsed 'Big images' part of the form: workers or scheduler, block size, output folder, resume."""
    box = QCollapsible("Big images (OME-Zarr, dask)")
    inner = QWidget()
    form = QFormLayout(inner)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    workers = QSpinBox(toolTip="Local dask workers (auto: one per two cores, memory allowing)")
    workers.setRange(0, 256)
    workers.setSpecialValueText("auto")
    form.addRow("Workers", bind(settings, "workers", workers))
    form.addRow("Scheduler", bind(settings, "scheduler", QLineEdit(
        placeholderText="tcp://host:8786 (empty: local workers)",
        toolTip="A running dask scheduler's address; its workers must see the image's folder")))
    block = QSpinBox(toolTip="Block size along Y and X: the memory each worker needs")
    block.setRange(MIN_BLOCK, MAX_BLOCK)
    block.setSingleStep(256)
    form.addRow("Block (px)", bind(settings, "block_size", block))
    folder = QHBoxLayout()
    out = bind(settings, "output_folder", QLineEdit(placeholderText="next to the image",
                                                    toolTip="Folder for <name>_labels.ome.zarr and its table"))
    browse = QPushButton("Browse…")
    browse.clicked.connect(lambda: _choose_folder(inner, out))
    folder.addWidget(out, 1)
    folder.addWidget(browse)
    form.addRow("Output", folder)
    resume = QCheckBox("Resume a stopped run", toolTip="Continue from the blocks already written")
    form.addRow(resume)
    box.resume_check = resume
    box.addWidget(inner)
    return box


def _choose_folder(parent: QWidget, edit: QLineEdit) -> None:
    path = QFileDialog.getExistingDirectory(parent, "Output folder")
    if path:
        edit.setText(path)


def shows_changed(viewer, layer, ev: Preview) -> bool:
    """True when a finished block changes what the run's labels ``layer`` shows: a numbered block in view.

    The segment pass sends a block's provisional ids (uint64, from the run
    folder); the store the layer reads holds a block only once it is
    numbered (uint32 final ids), so refreshing for the first pass redraws
    nothing new.
    """
    if np.asarray(ev.data).dtype == np.uint64:
        return False
    return layer is None or overlaps_view(viewer, layer, tuple(ev.region))


class BigImageRuns:
    """Starts and follows the dock's jobs on a big layer; the dock supplies the state, viewer and callbacks."""

    def __init__(self, dock, state: SegmentationState, section: QCollapsible,
                 go_idle: Callable[[bool], None]) -> None:
        self.dock = dock
        self.state = state
        self.section = section
        self.go_idle = go_idle
        self.layer = None  # the image layer a run reads
        self.output = None  # the lazy labels layer of a run
        self.result: BlockwiseResult | None = None
        self._norms: dict[str, dict] = {}  # percentiles per image, so repeated previews skip reading them
        self._last_refresh = 0.0
        self._refresh_timer = QTimer(dock, singleShot=True, interval=int(REFRESH_S * 1000),
                                     timeout=self._refresh)

    # -- preview -----------------------------------------------------------
    def preview(self, layer, region: dict, trust_code: bool = False) -> JobHandle | None:
        """Segment the region in view of ``layer`` at full resolution."""
        try:
            image = lazy_image_of(layer, self.state.axes.strip().upper())
            prediction = self.state.prediction(trust_code)
        except UserError as exc:
            show_error(f"Segmentation: {exc}")
            return None
        self.layer = layer
        key = f"{image.path}:{image.where}:{prediction['channel']}"
        self.state.status.start("Previewing the view…")

        def job(token):
            return (yield from segment_region_job(image, region, self.state.model, norm=self._norms.get(key),
                                                  token=token, **prediction))

        def done(result: RegionResult) -> None:
            self._norms[key] = result.norm
            self._show_region(result)

        return start_job(job, title="Segmentation preview", on_event=self._on_progress, on_result=done,
                         on_error=lambda msg: self.state.status.idle(f"Error: {msg}"), on_finished=self.go_idle)

    def _show_region(self, result: RegionResult) -> None:
        layer = self.layer
        name = f"{layer.name} [preview labels]"
        shape = tuple(p.stop - p.start for p in result.placement)
        data = result.labels.reshape(shape)
        if data.max(initial=0) < 1 << 16:  # ids are 1..n: napari draws uint16 as is, wider ids it hashes per frame
            data = data.astype(np.uint16)
        n = len(shape)
        scale = tuple(layer.scale)[-n:]
        translate = tuple(t + p.start * s for t, p, s in zip(tuple(layer.translate)[-n:], result.placement, scale))
        show_labels(self.dock.viewer, name, data, scale, translate)  # the same layer takes the next region
        self.state.count = f"{result.n_objects} objects in view ({self.state.model})"

    # -- blockwise run -----------------------------------------------------
    def run(self, layer, trust_code: bool = False) -> JobHandle | None:
        """Segment the whole of ``layer`` block by block into an OME-Zarr store."""
        try:
            image = lazy_image_of(layer, self.state.axes.strip().upper())
            job = self.state.build_blockwise_job(image, resume=self.section.resume_check.isChecked(),
                                                 trust_code=trust_code)
        except UserError as exc:
            show_error(f"Segmentation: {exc}")
            return None
        self.layer, self.output, self.result = layer, None, None
        self._job = job
        self.state.status.start(f"Starting dask workers for {image.name}…")
        def work(token):
            result = yield from blockwise_segment_job(job, token)
            # read here, off the GUI thread: a finished label image small enough to paint on is shown in memory
            return result, (finished_labels(result.labels) if result is not None else None)

        return start_job(work, title="Segmentation (blockwise)",
                         on_event=self._on_block_event, on_result=self._on_result,
                         on_error=lambda msg: self.state.status.idle(f"Error: {msg}"), on_finished=self._finished)

    def _on_progress(self, ev) -> None:
        if isinstance(ev, Progress):
            self.state.status.progress(ev)

    def _on_block_event(self, ev) -> None:
        self._on_progress(ev)
        if isinstance(ev, OutputCreated):
            # The labels layer is made now, while the workers start, and not when the first block lands:
            # napari building a layer holds the GUI thread for a few hundred ms, better right after the click.
            self.output = store_labels_layer(self.dock.viewer, ev.path, self.layer, f"{self.layer.name} [labels]")
        elif (isinstance(ev, Preview) and ev.kind is PreviewKind.LABELS and self.output is not None
              and shows_changed(self.dock.viewer, self.output, ev)):
            self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        """Refresh the labels layer now, or once REFRESH_S after the last refresh."""
        if time.monotonic() - self._last_refresh >= REFRESH_S:
            self._refresh()
        elif not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _refresh(self) -> None:
        self._last_refresh = time.monotonic()
        if self.output is not None and self.output in self.dock.viewer.layers:
            reload_layer(self.output)

    def _on_result(self, outcome: tuple[BlockwiseResult | None, np.ndarray | None]) -> None:
        result, held = outcome
        if result is None:
            return
        self.result = result
        self._refresh_timer.stop()
        self.output = store_labels_layer(self.dock.viewer, result.labels, self.layer, f"{self.layer.name} [labels]",
                                         held=held)
        tables = f"; measurements in {result.tables[0]}" if result.tables else ""
        self.state.count = (f"{result.n_objects} objects in {result.blocks} block(s) -> {result.labels.name}"
                            f"{tables}")
        for note in result.notes:
            show_info(note)

    def _finished(self, cancelled: bool) -> None:
        self._refresh_timer.stop()
        if cancelled and getattr(self, "_job", None) is not None:
            self.go_idle(True)
            self.state.status.idle(f"Cancelled: the blocks written are kept in {self._job.output.name}; "
                                   "tick 'Resume a stopped run' to continue")
            return
        self.go_idle(cancelled)

