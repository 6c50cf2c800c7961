"""The Annotation dock: paint ground truth, correct a model's labels, and add them to a training set.

Every edit is an operation of :mod:`..core.annotate` on the layer's array;
the dock only reads positions (cursor, points, lines, a rectangle) from the
viewer and writes the result back. 3D annotations are edited plane by plane:
"Delete at cursor" and "Merge 2 points" act in the plane shown (in the whole
volume when the layer's "n edit dim" is 3, or, for merging, when the points lie
in different planes); "Split along line" cuts in the line's plane; filling
holes works in every plane; removing small objects counts each object's
voxels, and relabelling renumbers the whole volume. A training set holds
annotations of one dimensionality. Pre-annotation runs the segmentation job
in a worker.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
)

from napari_dlmicro.core.data.training_sets import add_pair, check_dimensionality, summarize
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.segment import SegmentJob, segment_job
from napari_dlmicro.core.labels import edit as ops
from napari_dlmicro.core.models.catalogue import CATALOGUE
from napari_dlmicro.core.models.registry import Task, TrainsOn, kinds
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.state.annotation import AnnotationState
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.widgets._dock import DockPanel, narrow_combo
from napari_dlmicro.widgets._folder_row import FolderRow
from napari_dlmicro.widgets._lazy_layers import check_holdable, held_data
from napari_dlmicro.widgets._napari_compat import view_direction
from napari_dlmicro.workers import JobHandle, start_job

INSTANCE_KINDS = tuple(k.name for k in kinds(Task.SEGMENT) if k.trains_on is TrainsOn.MASKS)  # objects, not classes
ROI_NAME = "region of interest"
POINTS_NAME = "annotation points"
LINES_NAME = "annotation lines"


def annotation_name(image_name: str) -> str:
    """The Labels layer that annotates ``image_name``."""
    return f"{image_name} [annotation]"


class AnnotationWidget(DockPanel):
    """Dock: New annotation, editing tools, pre-annotation, region of interest, Add to training set."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self.state = AnnotationState()
        self.state.restore()
        self.handle: JobHandle | None = None
        layout = self.body
        form = QFormLayout()
        self.image_combo = narrow_combo(QComboBox(toolTip="Image to annotate"))
        form.addRow("Image", self.image_combo)
        layout.addLayout(form)
        new = QPushButton("New annotation", toolTip="A Labels layer matched to the image, in paint mode")
        new.clicked.connect(self.new_annotation)
        layout.addWidget(new)

        grid = QGridLayout()
        self.min_size = bind(self.state, "min_size", QSpinBox(minimum=1, maximum=100000))
        buttons = [
            ("Next free id", self.next_id, "Paint a new object with the next unused id"),
            ("Delete at cursor", self.delete_at_cursor,
             "Remove the object under the mouse (press with the cursor on it)"),
            ("Fill holes", self.fill_holes, "Fill holes inside every object (3D: in every Z plane)"),
            ("Relabel 1..N", self.relabel, "Renumber objects without gaps (3D: the whole volume)"),
            ("Merge 2 points", self.merge, f"Merge the objects under the last two points of '{POINTS_NAME}'"),
            ("Split along line", self.split, f"Cut the objects crossed by the last line of '{LINES_NAME}'"),
        ]
        for i, (text, slot, tip) in enumerate(buttons):
            b = QPushButton(text, toolTip=tip)
            b.clicked.connect(slot)
            grid.addWidget(b, i // 2, i % 2)
        small = QPushButton("Remove smaller than", toolTip="Remove objects with fewer pixels (3D: voxels) than this")
        small.clicked.connect(self.remove_small)
        grid.addWidget(small, 3, 0)
        grid.addWidget(self.min_size, 3, 1)
        layout.addLayout(grid)
        helpers = QHBoxLayout()
        for text, slot in (("Points layer", self._points_layer), ("Lines layer", self._lines_layer),
                           ("Region of interest", self.roi_layer)):
            b = QPushButton(text)
            b.clicked.connect(lambda *_, f=slot: self._guard(f))
            helpers.addWidget(b)
        layout.addLayout(helpers)

        pre = QHBoxLayout()
        self.model_combo = narrow_combo(QComboBox(toolTip="Any segmentation model: its labels become the "
                                                          "annotation to correct"))
        self.pre_button = QPushButton("Pre-annotate")
        self.pre_button.clicked.connect(self._pre_annotate_or_cancel)
        pre.addWidget(self.model_combo, 1)
        pre.addWidget(self.pre_button)
        layout.addLayout(pre)

        form2 = QFormLayout()
        folder_row = FolderRow(self.state.folder, "Training set folder (images/, masks/, meta/)",
                               "Training set folder", self.update_summary)
        self.folder_edit = folder_row.edit
        form2.addRow("Training set", folder_row)
        layout.addLayout(form2)
        add = QPushButton("Add to training set", toolTip="Save image and labels (cropped to the region of interest)")
        add.clicked.connect(self.add_to_training_set)
        layout.addWidget(add)
        self.summary = QLabel("")
        layout.addWidget(self.summary)
        layout.addStretch(1)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self.refresh_models()
        self.update_summary()

    # -- lists ------------------------------------------------------------------
    def _refresh_layers(self, *_) -> None:
        current = self.image_combo.currentText()
        self.image_combo.clear()
        self.image_combo.addItems([layer.name for layer in self.viewer.layers if isinstance(layer, Image)])
        if current:
            self.image_combo.setCurrentText(current)

    def refresh_models(self) -> None:
        """Catalogue and stored segmentation models."""
        current = self.model_combo.currentData() or self.state.model
        self.model_combo.clear()
        for m in list_models():
            if m.kind in INSTANCE_KINDS:
                self.model_combo.addItem(m.name, m.name if m.name in CATALOGUE else m.location)
        if current:
            self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(current)))

    def on_store_changed(self, folder: str) -> None:
        """A model was saved: offer it for pre-annotation."""
        self.refresh_models()

    # -- layers -----------------------------------------------------------------
    def image_layer(self) -> Image:
        name = self.image_combo.currentText()
        if not name or name not in self.viewer.layers:
            raise UserError("no image is selected", "open an image and pick it in the Annotation dock")
        return self.viewer.layers[name]

    def labels_layer(self) -> Labels:
        """The annotation of the chosen image (or the selected Labels layer)."""
        name = annotation_name(self.image_combo.currentText())
        if name in self.viewer.layers:
            return self.viewer.layers[name]
        active = self.viewer.layers.selection.active
        if isinstance(active, Labels):
            return active
        raise UserError("there is no annotation yet", "press 'New annotation' first")

    def new_annotation(self) -> Labels | None:
        """A Labels layer with the image's spatial shape, scale and translate, in paint mode."""
        return self._guard(self._new_annotation)

    def _new_annotation(self) -> Labels:
        image = self.image_layer()
        ndim = image.data.ndim - (1 if image.rgb else 0)
        shape = image.data.shape[:ndim]
        name = annotation_name(image.name)
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
        else:
            check_holdable(image.name, tuple(shape), "annotate")
            layer = self.viewer.add_labels(np.zeros(shape, np.uint32), name=name, scale=image.scale[:ndim],
                                           translate=image.translate[:ndim])
        self.viewer.layers.selection.active = layer
        layer.mode = "paint"
        layer.selected_label = ops.next_free_id(layer.data)
        return layer

    def _plane(self, layer: Labels) -> int | None:
        """The Z plane shown (in the layer's own pixels), for 3D annotations edited plane by plane."""
        if layer.data.ndim < 3:
            return None
        z = self._in_labels(layer, self.viewer.dims.point)[-3]
        return int(np.clip(round(float(z)), 0, layer.data.shape[-3] - 1))

    @staticmethod
    def _in_labels(layer: Labels, world, source=None) -> np.ndarray:
        """A position (world, or ``source`` layer data coordinates) in ``layer``'s pixel coordinates."""
        if source is not None:
            world = source.data_to_world(world)
        return np.asarray(layer.world_to_data(np.asarray(world, float)), float)

    def _world_position(self, position=None) -> np.ndarray:
        """``position`` (world; missing leading axes from the sliders), or the cursor on the plane shown."""
        dims = self.viewer.dims
        point = np.asarray(dims.point, float)
        pos = np.asarray(self.viewer.cursor.position if position is None else position, float)
        if len(pos) < len(point):
            pos = np.concatenate([point[: len(point) - len(pos)], pos])
        if position is None and dims.ndisplay == 2 and len(pos) == len(point):
            hidden = [ax for ax in range(len(point)) if ax not in dims.displayed]
            pos[hidden] = point[hidden]  # the cursor's slice can be stale after moving a slider
        return pos

    def _points_layer(self) -> Points:
        if POINTS_NAME not in self.viewer.layers:
            labels = self.labels_layer()  # the points share its pixel grid
            self.viewer.add_points(name=POINTS_NAME, ndim=labels.data.ndim, size=6, scale=labels.scale,
                                   translate=labels.translate)
        layer = self.viewer.layers[POINTS_NAME]
        self.viewer.layers.selection.active = layer
        layer.mode = "add"
        return layer

    def _lines_layer(self) -> Shapes:
        if LINES_NAME not in self.viewer.layers:
            labels = self.labels_layer()
            self.viewer.add_shapes(name=LINES_NAME, ndim=labels.data.ndim, edge_color="yellow", scale=labels.scale,
                                   translate=labels.translate)
        layer = self.viewer.layers[LINES_NAME]
        self.viewer.layers.selection.active = layer
        layer.mode = "add_path"
        return layer

    def roi_layer(self) -> Shapes:
        """The Shapes layer whose last rectangle limits annotation, pre-annotation and saving."""
        if ROI_NAME not in self.viewer.layers:
            image = self.image_layer()
            ndim = image.data.ndim - (1 if image.rgb else 0)
            self.viewer.add_shapes(name=ROI_NAME, ndim=ndim, edge_color="cyan", face_color="transparent",
                                   scale=image.scale[:ndim], translate=image.translate[:ndim])
        layer = self.viewer.layers[ROI_NAME]
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        return layer

    def crop(self, shape: tuple[int, ...]) -> tuple[slice, ...]:
        """The region of interest (last rectangle) as slices, or the whole array."""
        if ROI_NAME not in self.viewer.layers or not len(self.viewer.layers[ROI_NAME].data):
            return tuple(slice(0, n) for n in shape)
        corners = np.asarray(self.viewer.layers[ROI_NAME].data[-1])[:, -2:]
        sl = ops.crop_slices([corners.min(0), corners.max(0)], shape)
        return tuple(slice(0, n) if s == slice(None) else s for s, n in zip(sl, shape))

    # -- edits ------------------------------------------------------------------
    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except UserError as exc:
            show_error(f"Annotation: {exc}")
            return None

    def _apply(self, new: np.ndarray) -> None:
        layer = self.labels_layer()
        layer.data = new.astype(layer.data.dtype, copy=False)
        layer.selected_label = ops.next_free_id(layer.data)

    def next_id(self) -> None:
        def go():
            layer = self.labels_layer()
            layer.selected_label = ops.next_free_id(layer.data)
            layer.mode = "paint"
        self._guard(go)

    def delete_at_cursor(self, position=None) -> None:
        """Remove the object under the cursor (or world ``position``); 3D: in the plane shown."""
        def go():
            layer = self.labels_layer()
            world = self._world_position(position)
            if layer.data.ndim == 3 and self.viewer.dims.ndisplay == 3 and position is None:
                oid = layer.get_value(world, view_direction=view_direction(self.viewer),
                                      dims_displayed=list(self.viewer.dims.displayed), world=True)
                new, removed = ops.delete_id(layer.data, int(oid or 0)), int(oid or 0)
            else:
                new, removed = ops.delete_at(layer.data, self._in_labels(layer, world),
                                             in_plane=layer.n_edit_dimensions < 3)
            if removed:
                self._apply(new)
        self._guard(go)

    def fill_holes(self) -> None:
        self._guard(lambda: self._apply(ops.fill_holes(self.labels_layer().data)))

    def relabel(self) -> None:
        self._guard(lambda: self._apply(ops.relabel_sequential(self.labels_layer().data)))

    def remove_small(self) -> None:
        def go():
            new, n = ops.remove_small(self.labels_layer().data, self.min_size.value())
            self._apply(new)
            show_info(f"Annotation: removed {n} object(s) smaller than {self.min_size.value()} pixels")
        self._guard(go)

    def merge(self) -> None:
        def go():
            layer = self.labels_layer()
            points = self.viewer.layers[POINTS_NAME] if POINTS_NAME in self.viewer.layers else None  # noqa: SIM401 - LayerList has no .get
            if points is None or len(points.data) < 2:
                raise UserError("merging needs two points", f"add two points, one on each object, to '{POINTS_NAME}'")
            p, q = (self._in_labels(layer, pt, points) for pt in points.data[-2:])
            new, _ = ops.merge_at(layer.data, p, q, in_plane=layer.n_edit_dimensions < 3)
            self._apply(new)
        self._guard(go)

    def split(self) -> None:
        def go():
            layer = self.labels_layer()
            lines = self.viewer.layers[LINES_NAME] if LINES_NAME in self.viewer.layers else None  # noqa: SIM401 - LayerList has no .get
            if lines is None or not len(lines.data):
                raise UserError("splitting needs a line", f"draw a line across the object in '{LINES_NAME}'")
            line = np.array([self._in_labels(layer, v, lines) for v in np.asarray(lines.data[-1])])
            plane = self._plane(layer)
            if layer.data.ndim == 3 and np.asarray(lines.data[-1]).shape[1] >= 3 and np.ptp(line[:, -3]) < 0.5:
                plane = round(float(line[0, -3]))  # the plane the line was drawn in
            new, _ = ops.split_along_line(layer.data, line[:, -2:], plane)
            self._apply(new)
        self._guard(go)

    # -- model and training set ------------------------------------------------
    def pre_annotate(self) -> JobHandle | None:
        """Run the chosen model on the image (inside the region of interest) into the annotation."""
        def go():
            image = self.image_layer()
            layer = self.labels_layer() if annotation_name(image.name) in self.viewer.layers else self._new_annotation()
            crop = self.crop(layer.data.shape)
            data = np.asarray(held_data(image, "annotate")[crop])
            job = SegmentJob(data, self.model_combo.currentData(), axes="YXC" if image.rgb else None, measure=False)

            def done(result) -> None:
                if self.handle is None:
                    return  # cancelled: the annotation stays as it was
                out = layer.data.copy()
                out[crop] = result.labels
                self._apply(out)
                show_info(f"Annotation: {result.n_objects} objects from {result.model_name}: correct them, "
                          "then add to the training set")

            self.state.model = self.model_combo.currentData() or ""
            self.state.remember()
            self.pre_button.setText("Cancel pre-annotation")
            self.handle = self.track(start_job(lambda token: segment_job(job, token), title="Pre-annotate",
                                               on_result=done, on_finished=self._pre_annotation_ended))
            return self.handle
        return self._guard(go)

    def _pre_annotate_or_cancel(self) -> None:
        if self.handle is not None and not self.handle.finished:
            self.handle.cancel()
        else:
            self.pre_annotate()

    def _pre_annotation_ended(self, cancelled: bool) -> None:
        self.pre_button.setText("Pre-annotate")
        if cancelled:
            self.handle = None

    def add_to_training_set(self) -> str | None:
        """Save (image crop, labels crop) into the training set; returns the name used."""
        def go():
            folder = self.folder_edit.text().strip()
            if not folder:
                raise UserError("no training set folder is chosen", "pick or type a folder")
            image, layer = self.image_layer(), self.labels_layer()
            check_dimensionality(folder, layer.data.ndim)
            crop = self.crop(layer.data.shape)
            source = getattr(image.source, "path", None) or image.name
            pixels = np.asarray(held_data(image, "annotate")[crop])
            name = add_pair(folder, pixels, np.asarray(layer.data[crop]), image.name, source=str(source), crop=crop)
            self.state.folder = folder
            self.state.remember()
            self.update_summary()
            show_info(f"Annotation: added '{name}' to {Path(folder).name} ({self.summary.text()})")
            return name
        return self._guard(go)

    def update_summary(self) -> None:
        folder = self.folder_edit.text().strip()
        try:
            self.summary.setText(str(summarize(folder)) if folder and Path(folder).is_dir() else "")
        except UserError as exc:
            self.summary.setText(str(exc))

