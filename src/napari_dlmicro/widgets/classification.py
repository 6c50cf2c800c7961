"""The Classification dock: a class for every segmented object, from a few clicks.

A view of :class:`...state.classification.ClassificationState`; its jobs
(:mod:`...state.classify_jobs`) run off napari's thread through
:func:`...workers.start_job`. A click on an object of the chosen Labels
layer labels it with the selected class; clicks arriving within
:data:`COALESCE_MS` of each other are fitted together, and while a fit runs
further clicks wait for it, so the fast classifier retrains and
repredicts as the user clicks without ever queueing work up or holding the
viewer. Results go to the Labels layer's ``features`` (class and probability
of every object), a class-coloured layer redrawn only where classes changed,
the counts per class, and, once the user pauses, an accuracy and confusion
matrix on held-out clicks. When the labels change (a new segmentation,
objects painted or erased), the clicks are carried over to the objects that
still overlap. Errors are napari notifications with the cause and the
remedy; the clicks are never lost to one.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QFileDialog

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.deep import DeepClassifier
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.state.classification import MAX_KEYS, ClassificationState, check_layers, time_axis
from napari_dlmicro.state.classify_jobs import Update, why_job
from napari_dlmicro.widgets._classify_actions import TITLE, ClassifyActions
from napari_dlmicro.widgets._classify_form import ClassifyForm
from napari_dlmicro.widgets._classify_hover import HoverExplainer
from napari_dlmicro.widgets._classify_layers import (
    BandWriter,
    clicks_layer_name,
    keep_active,
    suggest_layer_name,
)
from napari_dlmicro.widgets._classify_markers import MarkerPainter, marker_colormap
from napari_dlmicro.widgets._classify_store import ClassifyStore
from napari_dlmicro.widgets._dock import DockPanel
from napari_dlmicro.widgets._layers import ensure_labels_layer
from napari_dlmicro.widgets._lazy_layers import held_data
from napari_dlmicro.widgets._napari_compat import view_direction
from napari_dlmicro.workers import RUNNING, JobHandle

COALESCE_MS = 120  # clicks closer together than this are fitted together
ASSESS_DELAY_MS = 1500  # the held-out score is computed once the clicks pause this long
LABELS_SETTLE_MS = 1000  # the labels are checked again this long after their last edit
DRAG_PX = 4  # a press that moves further than this pans the view: it labels nothing
OUTPUT_TAGS = (" [classes]", " [clicks]", " [suggest]", " [why]")  # the dock's own layers


class ClassificationWidget(ClassifyActions, ClassifyStore, DockPanel):
    """Dock: Image + Labels layers, classes, clicks -> every object's class, live."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.state = ClassificationState()
        self.state.restore()
        self.measured = None  # the objects measured (Measured), and the time point they are of
        self.measured_where: tuple[int, ...] = ()
        self.update: Update | None = None  # the classification shown
        self.model = None  # the classifier that made it
        self.assessment = None
        self.handle: JobHandle | None = None  # the running job (one at a time)
        self._assessing: JobHandle | None = None
        self._queued: dict[str, Callable[[], None]] = {}  # what runs once the running job ends
        self._version = 0  # counts the clicks' changes; a result knows which it was fitted on
        self._assessed = -1
        self._attached: list = []  # layers carrying the dock's click and key handlers
        self._coloured = None  # the classes the class layer is coloured by
        self._maps: dict[tuple[int, ...], np.ndarray] = {}  # class maps shown, by time point
        self._suggested = np.zeros(0, np.int64)
        self._failed = False
        self._labels_dirty = False  # the labels were edited since they were measured
        self.last_label = 0
        self.why_result = None
        self.writer = BandWriter()
        self.markers = MarkerPainter()
        self._marked = None  # the classes the click markers are coloured by
        self._click_timer = QTimer(self, singleShot=True, interval=COALESCE_MS, timeout=self.refresh)
        self._assess_timer = QTimer(self, singleShot=True, interval=ASSESS_DELAY_MS, timeout=self.assess)
        self._labels_timer = QTimer(self, singleShot=True, interval=LABELS_SETTLE_MS, timeout=self._labels_settled)
        # the click markers are redrawn in a turn of their own, once for the clicks of one turn
        self._markers_timer = QTimer(self, singleShot=True, interval=0, timeout=self._show_markers)
        self.form = f = ClassifyForm(self.state, self._error)
        self.body.addWidget(f)
        f.image_combo.currentIndexChanged.connect(self._on_layers_chosen)
        f.labels_combo.currentIndexChanged.connect(self._on_layers_chosen)
        f.kind_combo.currentIndexChanged.connect(lambda *_: self._guard(self.state.choose_kind,
                                                                         f.kind_combo.currentData()))
        f.train_button.clicked.connect(self.train)
        f.stop_button.clicked.connect(self.stop)
        f.cancel_button.clicked.connect(self.cancel)
        f.suggest_button.clicked.connect(self.suggest)
        f.why_button.clicked.connect(lambda: self.why())
        f.export_button.clicked.connect(self._export_dialog)
        f.export_clicks_button.clicked.connect(self._export_clicks_dialog)
        f.clear_button.clicked.connect(self.clear_clicks)
        f.save_button.clicked.connect(self.save)
        f.classify_button.clicked.connect(lambda: self.classify())
        f.busy(False)
        self.state.events.table.connect(self._on_table)
        self.hover = HoverExplainer(self._hover_job, lambda r: self._on_why(*r), self.track, self)
        for event in (self.state.events.classes, self.state.events.kind, self.state.events.hover):  # remembered
            event.connect(self.state.remember)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        offload.warm_up()  # the helper process the refits run in, started before the first click needs it
        self._refresh_layers()
        self._refresh_models()

    # -- layers ---------------------------------------------------------------------------------------
    def _refresh_layers(self, *_) -> None:
        f = self.form
        for combo, kind, current in ((f.image_combo, Image, self.state.image), (f.labels_combo, Labels,
                                                                                  self.state.labels)):
            names = [lay.name for lay in self.viewer.layers if isinstance(lay, kind) and not _ours(lay.name)]
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self._on_layers_chosen()

    def _on_layers_chosen(self, *_) -> None:
        image, labels = self.form.image_combo.currentText(), self.form.labels_combo.currentText()
        changed = (image, labels) != (self.state.image, self.state.labels)
        self.state.image, self.state.labels = image, labels
        layer = self.labels_layer()
        if layer is None:
            self._detach()
            return
        if self._attached[:1] != [layer]:
            self._detach()
            self._attach(layer)
        if changed or self.measured is None:
            self.refresh()

    def image_layer(self) -> Image | None:
        """The chosen Image layer."""
        return self._layer(self.state.image)

    def labels_layer(self) -> Labels | None:
        """The chosen Labels layer."""
        return self._layer(self.state.labels)

    def _layer(self, name: str):
        return next((layer for layer in self.viewer.layers if layer.name == name), None)

    def _layers(self) -> tuple[Image, Labels, bool]:
        """The chosen layers, checked against each other, and whether the labels have a time axis."""
        image, labels = self.image_layer(), self.labels_layer()
        if labels is None:
            raise UserError("no Labels layer is chosen", "segment the image (Segmentation dock) or paint objects, "
                            "then pick the Labels layer")
        if image is None:
            raise UserError("no image layer is chosen", "open the image the objects were segmented from")
        axes = next((m.get("axes") for m in (image.metadata, labels.metadata)
                     if isinstance(m, dict) and isinstance(m.get("axes"), str)), None)
        timed = time_axis(axes, labels.data.ndim)
        check_layers(image.name, image.data.shape, labels.name, labels.data.shape, timed)
        return image, labels, timed

    def _frames(self):
        """``(image, labels, where)`` of the time point the clicks belong to (the one shown if none yet)."""
        image, labels, timed = self._layers()
        image_data, labels_data = held_data(image, "classify"), held_data(labels, "classify")
        if not timed:
            return image_data, labels_data, ()
        t = self.state.frame if self.state.table and self.state.frame is not None else self._frame_shown(labels)
        return image_data[t], labels_data[t], (t,)

    def _frame_shown(self, labels: Labels) -> int:
        t = labels.world_to_data(self.viewer.dims.point)[0]
        return int(np.clip(round(float(t)), 0, labels.data.shape[0] - 1))

    def _attach(self, layer) -> None:
        """Clicks on ``layer`` label objects, its keys 1-9 pick classes and W explains."""
        layer.mouse_drag_callbacks.append(self._on_mouse)
        layer.mouse_move_callbacks.append(self._on_move)
        for k in range(1, MAX_KEYS + 1):
            layer.bind_key(str(k), lambda _layer, k=k: self._guard(self.state.select, k - 1), overwrite=True)
        layer.bind_key("w", lambda _layer: self.why(), overwrite=True)
        if isinstance(layer, Labels) and not self._attached:
            for event in (layer.events.data, layer.events.paint, layer.events.labels_update):
                event.connect(self._labels_edited)
            layer.mode = "pan_zoom"
        self._attached.append(layer)

    def _detach(self) -> None:
        for layer in self._attached:
            if self._on_mouse in layer.mouse_drag_callbacks:
                layer.mouse_drag_callbacks.remove(self._on_mouse)
            if self._on_move in layer.mouse_move_callbacks:
                layer.mouse_move_callbacks.remove(self._on_move)
            for key in [str(k) for k in range(1, MAX_KEYS + 1)] + ["w"]:
                layer.bind_key(key, None)
            if isinstance(layer, Labels):
                for event in (layer.events.data, layer.events.paint, layer.events.labels_update):
                    event.disconnect(self._labels_edited)
        self._attached = []

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Closing the dock remembers its form, takes its handlers off the layers (and cancels its jobs)."""
        self.state.remember()
        self._detach()
        super().closeEvent(event)

    # -- clicks -----------------------------------------------------------------------------------------
    def _on_mouse(self, layer, event):
        """A press that does not move (a click, not a pan) on an object labels it; only in pan/zoom mode."""
        if event.button != 1 or str(layer.mode) != "pan_zoom":
            return
        start = np.asarray(event.pos, float)
        moved = False
        yield
        while event.type == "mouse_move":
            moved = moved or float(np.hypot(*(np.asarray(event.pos, float) - start))) > DRAG_PX
            yield
        if not moved:
            self.click_at(event.position)

    def _on_move(self, layer, event) -> None:
        """With "Explain on hover": tell the explainer which measured object the cursor is over."""
        if not self.state.hover or self.model is None or self.measured is None:
            return
        try:
            label, frame = self.object_at(event.position)
        except (UserError, IndexError, ValueError):
            label, frame = 0, None
        if frame is not None and (frame,) != self.measured_where:
            label = 0
        self.hover.moved_to(label if label and self.measured.features.has(label) else 0)

    def _hover_job(self, label: int):
        """The job explaining ``label`` with the classification shown (None: nothing to explain)."""
        model, measured, where = self.model, self.measured, self.measured_where
        if model is None or measured is None:
            return None
        deep = isinstance(model, DeepClassifier)

        def job(token):
            why = yield from why_job(model, measured, int(label), token)
            return why, where, deep

        return job

    def object_at(self, position) -> tuple[int, int | None]:
        """The object id at world ``position`` (0: background) and its time point (None: no time axis)."""
        _, labels, timed = self._layers()
        position = np.asarray(position, float)
        if self.viewer.dims.ndisplay == 3:
            value = labels.get_value(position, view_direction=view_direction(self.viewer),
                                     dims_displayed=list(self.viewer.dims.displayed), world=True)
        else:
            value = labels.get_value(position, world=True)
        frame = int(round(float(labels.world_to_data(position)[0]))) if timed else None
        return int(value or 0), frame

    def click_at(self, position) -> str | None:
        """Label the object at world ``position`` with the selected class, as a click there does; returns the
        class given (None: the background, or the object was unlabelled)."""
        try:
            label, frame = self.object_at(position)
            name = self.state.click(label, frame)
        except UserError as exc:
            self._error(exc)
            return None
        if label:
            self.last_label = label
            self._version += 1
            self._assess_timer.stop()
            if self.state.kind == "fast" and self.state.live:
                self._click_timer.start()
        return name

    def clear_clicks(self) -> None:
        """Forget every click (the classification shown stays until the next fit)."""
        n = self.state.clear_clicks()
        self._version += 1
        self.state.show_assessment(None)
        show_info(f"{TITLE}: {n} click(s) cleared")

    def _on_table(self, *_) -> None:
        self._markers_timer.start()

    def _show_markers(self) -> None:
        labels = self.labels_layer()
        if labels is None or self.measured is None:
            return
        f, table = self.measured.features, self.state.table
        ids = np.fromiter((k for k in table), np.int64, len(table))
        ids = ids[np.isin(ids, f.ids)]
        index = {c.name: k for k, c in enumerate(self.state.classes)}  # a class since removed: -1, white
        centres = np.rint(f.centroids[f.rows(ids)]).astype(np.int64) if len(ids) else np.zeros((0, f.ndim), int)
        markers = {int(i): (index.get(table[int(i)], -1), tuple(int(v) for v in c)) for i, c in zip(ids, centres)}
        self.markers.paint(self._clicks_layer(), self.measured_where, markers, self._marker_size() / 2)
        if len(self._suggested) and suggest_layer_name(labels.name) in self.viewer.layers:
            left = self._suggested[~np.isin(self._suggested, ids)]
            if len(left) < len(self._suggested):
                self._suggested = left
                self._show_suggested()

    def _clicks_layer(self) -> Labels:
        """The Labels layer of the click markers, coloured by the classes, with the dock's clicks and keys."""
        labels = self.labels_layer()
        name = clicks_layer_name(labels.name)
        existed = name in self.viewer.layers and self.viewer.layers[name].data.shape == labels.data.shape
        layer = ensure_labels_layer(self.viewer, name, labels.data.shape, labels, np.uint8)
        if not existed or self._marked != self.state.classes:
            layer.colormap = marker_colormap(self.state.classes)
            self._marked = self.state.classes
        if not existed:
            keep_active(self.viewer, labels)
        if not any(lay is layer for lay in self._attached):
            self._attach(layer)
        return layer

    def _coords(self, centroids: np.ndarray) -> np.ndarray:
        """Centroids (pixels of a time point) as points of the Labels layer (the time point prepended)."""
        if not self.measured_where:
            return centroids
        return np.column_stack([np.full(len(centroids), self.measured_where[0]), centroids])

    def _marker_size(self) -> float:
        sizes = self.measured.features.sizes if self.measured is not None else np.zeros(0)
        return float(max(3.0, 0.5 * np.sqrt(np.median(sizes)))) if len(sizes) else 5.0

    def _labels_edited(self, *_) -> None:
        self._labels_dirty = True
        self._labels_timer.start()

    def _labels_settled(self) -> None:
        """The labels were edited: once no other job (a segmentation writing them) runs, carry the clicks over."""
        if any(h not in self._handles for h in list(RUNNING)):
            self._labels_timer.start()
            return
        self.refresh()

    # -- file dialogs --------------------------------------------------------------------------------------
    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export classes", f"{self.state.labels}_classes.csv",
                                              "CSV (*.csv)")
        if path:
            self.export_csv(path)

    def _export_clicks_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export clicks", f"{self.state.labels}.csv", "CSV (*.csv)")
        if path:
            self.export_clicks(path)


def _ours(name: str) -> bool:
    """True for the layers this dock makes (they are not offered as its input)."""
    return name.endswith(OUTPUT_TAGS)
