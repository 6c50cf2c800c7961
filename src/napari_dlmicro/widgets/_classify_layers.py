"""The Classification dock's layers: the class-coloured layer, click and suggestion markers, the "why" image.

Every output layer is named after the Labels layer it classifies and shares
its pixel grid (scale and translate), and is updated in place. The class
layer holds each object's class index (uint8) under a cyclic colormap of
the class colours, so napari draws it through a 256-entry lookup texture;
it is redrawn only where classes changed, band by band between turns of the
event loop (:class:`BandWriter`), so a refit on a very large image never
holds napari for the time a whole redraw takes. The Labels layer's
``features`` are rewritten in place while the objects stay the same
(:func:`write_features`). Adding a layer makes it the active one; the Labels
layer is made active again, so its keys and clicks keep working.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from napari.layers import Image, Labels, Points
from napari.utils.colormaps import CyclicLabelColormap
from napari.utils.colormaps.standardize_color import transform_color
from qtpy.QtCore import QTimer

from napari_dlmicro.core.models.classifier.classes import ClassSpec
from napari_dlmicro.state.classify_jobs import Region, Why
from napari_dlmicro.widgets._layers import ensure_labels_layer, write_labels_region

# Pixels redrawn per turn of the event loop: writing 4 Mpx of a uint8 class map and marking it for upload takes
# a few milliseconds, so images up to 2048² are redrawn in one turn (one frame), larger ones band by band
BAND_PIXELS = 1 << 22
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def class_layer_name(labels_name: str) -> str:
    """The class-coloured layer of Labels layer ``labels_name``."""
    return f"{labels_name} [classes]"


def clicks_layer_name(labels_name: str) -> str:
    """The markers of the clicked objects."""
    return f"{labels_name} [clicks]"


def suggest_layer_name(labels_name: str) -> str:
    """The markers of the objects "Suggest" proposes to label next."""
    return f"{labels_name} [suggest]"


def why_layer_name(labels_name: str) -> str:
    """The image of why an object got its class."""
    return f"{labels_name} [why]"


def class_colours(classes: Sequence[ClassSpec]) -> np.ndarray:
    """The RGBA colour of each class (one row per class, in order)."""
    return transform_color([c.colour for c in classes]) if len(classes) else np.zeros((0, 4), np.float32)


def class_colormap(classes: Sequence[ClassSpec]) -> CyclicLabelColormap:
    """Class index k + 1 in the colour of ``classes[k]``, the background (0) transparent.

    Cyclic rather than direct: napari maps a uint8 layer through a cyclic
    colormap with a lookup table it builds in well under a millisecond, where
    a direct colormap first compiles numba code on the GUI thread (3 s, once
    per session: the first classification shown stalled napari that long).
    The class map holds no index above the number of classes, so nothing
    cycles.
    """
    return CyclicLabelColormap(colors=np.vstack([TRANSPARENT, class_colours(classes)]))


def write_features(labels: Labels, frame: pd.DataFrame) -> bool:
    """``frame`` as the ``features`` of ``labels``; True when written in place.

    While the objects and columns stay the same (a refit changes classes and
    probabilities only), the columns of napari's table are replaced in place:
    its setter validates the whole table again and derives a default for
    every column, tens of milliseconds on the GUI thread at each click, and
    nothing napari derives from the table depends on its values.
    """
    current = labels.features
    same = (len(current) == len(frame) and list(current.columns) == list(frame.columns) and "index" in frame
            and np.array_equal(current["index"].to_numpy(), frame["index"].to_numpy()))
    if not same:
        labels.features = frame
        return False
    for column in frame.columns:
        current[column] = frame[column].to_numpy()
    return True


def keep_active(viewer, layer) -> None:
    """Make ``layer`` the active (selected) layer again."""
    if layer is not None and layer in viewer.layers:
        viewer.layers.selection.active = layer


def ensure_class_layer(viewer, labels: Labels, classes: Sequence[ClassSpec], coloured: Sequence[ClassSpec] | None
                       ) -> tuple[Labels, bool]:
    """The class layer of ``labels`` (made if missing or of another shape), coloured by ``classes`` unless it
    already is (``coloured``: the classes it was coloured by); and whether it is new (all of it to be drawn).
    A new class layer turns ``labels`` into outlines, so each object shows its class colour alone. The dock
    makes it once the objects are measured, so neither the layer nor the outlines (a pass over every pixel)
    cost the first click anything."""
    name = class_layer_name(labels.name)
    existed = name in viewer.layers and viewer.layers[name].data.shape == labels.data.shape
    layer = ensure_labels_layer(viewer, name, labels.data.shape, labels, np.uint8)
    if not existed:
        layer.opacity = 0.7
        labels.contour = 1  # outlines only: the objects' own colours would muddle their class colours
        keep_active(viewer, labels)
    if not existed or tuple(coloured or ()) != tuple(classes):
        layer.colormap = class_colormap(classes)
    return layer, not existed


def show_points(viewer, name: str, labels: Labels, coords: np.ndarray, **style) -> Points:
    """The Points layer ``name`` on ``labels``' grid, showing ``coords`` (data pixels); made if missing.
    ``face_color``: one colour, or one RGBA row per point."""
    coords = np.asarray(coords, float).reshape(-1, labels.data.ndim)
    colours = style.pop("face_color", None)
    if name in viewer.layers and isinstance(viewer.layers[name], Points):
        layer = viewer.layers[name]
        layer.data = coords
    else:
        if name in viewer.layers:
            viewer.layers.remove(name)
        layer = viewer.add_points(coords, name=name, ndim=labels.data.ndim, scale=labels.scale,
                                  translate=labels.translate, **style)
        keep_active(viewer, labels)
    if colours is not None and len(coords):
        layer.face_color = np.asarray(colours) if not isinstance(colours, str) else colours
    return layer


def show_why(viewer, labels: Labels, why: Why, where: tuple[int, ...], deep: bool) -> Image:
    """The "why" image of ``why`` placed over its object (time point ``where`` of ``labels``)."""
    name = why_layer_name(labels.name)
    nd = why.data.ndim
    scale = np.asarray(labels.scale, float)[-nd:]
    translate = np.asarray(labels.translate, float)[-nd:] + scale * [r.start for r in why.region]
    colormap = "inferno" if deep else "yellow"
    layer = next((lay for lay in viewer.layers if lay.name == name), None)
    if isinstance(layer, Image) and layer.data.ndim == nd:  # updated in place: adding a layer costs frames
        layer.data = why.data
        layer.scale, layer.translate = scale, translate
        if layer.colormap.name != colormap:
            layer.colormap = colormap
        layer.contrast_limits = (0.0, 1.0)
        layer.visible = True
        return layer
    if layer is not None:
        viewer.layers.remove(name)
    layer = viewer.add_image(why.data, name=name, scale=scale, translate=translate, contrast_limits=(0.0, 1.0),
                             colormap=colormap, blending="additive", opacity=0.7)
    keep_active(viewer, labels)
    return layer


class BandWriter:
    """Writes a class map into a Labels layer where it changed, one band per turn of the event loop."""

    def __init__(self) -> None:
        self.layer: Labels | None = None
        self.where: tuple[int, ...] = ()
        self.class_map: np.ndarray | None = None
        self.region: Region | None = None  # still to be written
        self.bands: list[Region] = []

    @property
    def pending(self) -> bool:
        """True while bands remain to be written."""
        return bool(self.bands)

    def write(self, layer: Labels, where: tuple[int, ...], class_map: np.ndarray, region: Region | None) -> None:
        """Write ``class_map[region]`` into ``layer.data[where]`` (a region still pending is written too)."""
        if self.bands and (layer is not self.layer or where != self.where):
            self.flush()
        if self.bands and self.region is not None:
            region = self.region if region is None else union(self.region, region)
        self.layer, self.where, self.class_map, self.region = layer, where, class_map, region
        self.bands = bands(region) if region is not None else []
        if self.bands:
            self._next()

    def flush(self) -> None:
        """Write every remaining band now."""
        while self.bands:
            self._write_band(self.bands.pop(0))
        self.region = None

    def _next(self) -> None:
        if not self.bands:
            return
        self._write_band(self.bands.pop(0))
        if self.bands:
            QTimer.singleShot(0, self._next)
        else:
            self.region = None

    def _write_band(self, band: Region) -> None:
        layer = self.layer
        if layer is None or layer.data.shape[len(self.where):] != self.class_map.shape:
            self.bands = []
            return
        dst = tuple(slice(t, t + 1) for t in self.where) + band
        block = self.class_map[band].reshape([s.stop - s.start for s in dst])
        write_labels_region(layer, dst, block.astype(layer.data.dtype, copy=False))


def union(a: Region, b: Region) -> Region:
    """The bounding box of two regions."""
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def bands(region: Region, pixels: int = BAND_PIXELS) -> list[Region]:
    """``region`` cut along its first axis into bands of about ``pixels``."""
    sizes = [s.stop - s.start for s in region]
    rest = int(np.prod(sizes[1:], dtype=np.int64)) or 1
    step = max(1, pixels // rest)
    first = region[0]
    return [(slice(start, min(first.stop, start + step)),) + tuple(region[1:])
            for start in range(first.start, first.stop, step)]
