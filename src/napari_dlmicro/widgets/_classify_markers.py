"""The click markers of the Classification dock: a dot in the class colour, ringed in white, on each clicked object.

The dots are painted into a uint8 Labels layer on the objects' pixel grid
(1: the white ring, k + 2: the fill of class k, under a cyclic colormap of
those colours), and a click repaints only the box around the dots that
changed. A Points layer would be the obvious choice, but napari rebuilds a
Points layer's visual, its colours, its thumbnail and the viewer's extent
whenever its data change: 80-150 ms of the event loop per click for ten
points on a busy 2-core machine, where painting a dot and uploading its box
takes a millisecond.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from napari.layers import Labels
from napari.utils.colormaps import CyclicLabelColormap

from napari_dlmicro.core.models.classifier.classes import ClassSpec
from napari_dlmicro.state.classify_jobs import Region
from napari_dlmicro.widgets._classify_layers import TRANSPARENT, class_colours
from napari_dlmicro.widgets._layers import write_labels_region

RING, WHITE = 1, (1.0, 1.0, 1.0, 1.0)
Marker = tuple[int, tuple[int, ...]]  # (class index, centre in pixels of the frame)


def marker_colormap(classes: Sequence[ClassSpec]) -> CyclicLabelColormap:
    """Transparent background, the white ring (1), then class k's colour at k + 2."""
    return CyclicLabelColormap(colors=np.vstack([TRANSPARENT, WHITE, class_colours(classes)]))


def dot(radius: float, ndim: int) -> np.ndarray:
    """A dot of ``radius`` pixels: 0 outside, :data:`RING` on its rim (one pixel wide), 2 inside."""
    r = int(np.ceil(radius))
    grid = np.indices((2 * r + 1,) * ndim, dtype=np.float32) - r
    distance = np.sqrt((grid**2).sum(axis=0))
    out = np.zeros(distance.shape, np.uint8)
    out[distance <= radius] = RING
    out[distance <= radius - 1.0] = 2
    return out


def _box(centre: Sequence[int], r: int, shape: Sequence[int]) -> Region:
    return tuple(slice(max(0, c - r), min(n, c + r + 1)) for c, n in zip(centre, shape))


def _union(boxes: list[Region]) -> Region | None:
    boxes = [b for b in boxes if all(s.stop > s.start for s in b)]
    if not boxes:
        return None
    return tuple(slice(min(b[d].start for b in boxes), max(b[d].stop for b in boxes)) for d in range(len(boxes[0])))


class MarkerPainter:
    """Paints markers into a Labels layer, repainting only where they changed since the last call."""

    def __init__(self) -> None:
        self.layer: Labels | None = None
        self.where: tuple[int, ...] = ()
        self.radius = 0.0
        self.shown: dict[int, Marker] = {}

    def paint(self, layer: Labels, where: tuple[int, ...], markers: Mapping[int, Marker],
              radius: float) -> Region | None:
        """Show ``markers`` (by object id) in time point ``where`` of ``layer``; returns the box repainted."""
        shape = layer.data.shape[len(where):]
        r = int(np.ceil(radius))
        if layer is not self.layer or where != self.where or radius != self.radius:
            if self.layer is layer and self.where != where and self.shown:  # clear the other time point
                old = tuple(slice(t, t + 1) for t in self.where) + tuple(slice(0, n) for n in shape)
                write_labels_region(layer, old, np.zeros([s.stop - s.start for s in old], np.uint8))
            self.layer, self.where, self.radius, self.shown = layer, where, radius, {}
            region = tuple(slice(0, n) for n in shape)  # everything, once
        else:
            changed = [k for k in set(self.shown) | set(markers) if self.shown.get(k) != markers.get(k)]
            region = _union([_box(m[1], r, shape) for k in changed for m in (self.shown.get(k), markers.get(k))
                             if m is not None])
        self.shown = dict(markers)
        if region is None:
            return None
        block = np.zeros([s.stop - s.start for s in region], np.uint8)
        footprint = dot(radius, len(shape))
        for index, centre in (markers[k] for k in sorted(markers)):
            box = _box(centre, r, shape)
            inside = tuple(slice(max(b.start, g.start), min(b.stop, g.stop)) for b, g in zip(box, region))
            if any(s.stop <= s.start for s in inside):
                continue
            src = footprint[tuple(slice(s.start - (c - r), s.stop - (c - r)) for s, c in zip(inside, centre))]
            dst = block[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(inside, region))]
            dst[src == RING] = RING
            dst[src == 2] = index + 2
        dst_region = tuple(slice(t, t + 1) for t in where) + region
        write_labels_region(layer, dst_region, block.reshape([s.stop - s.start for s in dst_region]))
        return region
