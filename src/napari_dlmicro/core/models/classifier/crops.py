"""Square crops around objects for the deep classifier: the image's channels and the object's mask.

Each object gets a square box centred on its bounding box, sampled to
``size`` x ``size`` pixels: bilinear for the image, nearest for the mask
channel (1 on the object, 0 elsewhere, other objects included). Parts of a
box beyond the image border read 0. The box has one side for every object,
``side`` image pixels (:func:`fixed_side`: most objects with their
``context`` fit), so a crop keeps the object's size, which a box fitted to
each object would scale away; an object too large for it gets a box of its
larger extent plus ``context`` of it on each side. :func:`to_image` puts a
map over a crop (a Grad-CAM) back into image pixels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_dlmicro.core.models.classifier.objects import Objects

MIN_SIDE = 16  # pixels: a box never shrinks below this, so tiny objects keep some surroundings


@dataclass(frozen=True)
class CropGeometry:
    """How objects are cropped: the crop's side in pixels and the context around the object."""

    size: int = 64
    context: float = 0.5
    side: float | None = None  # image pixels the crop spans (None: fitted to each object)

    def box(self, box: tuple[slice, ...]) -> tuple[np.ndarray, float]:
        """Centre (y, x) and side, in image pixels, of the crop of an object with bounding box ``box``."""
        starts = np.array([s.start for s in box], np.float64)
        stops = np.array([s.stop for s in box], np.float64)
        fitted = max(float((stops - starts).max()) * (1 + 2 * self.context), MIN_SIDE)
        return (starts + stops - 1) / 2, max(fitted, self.side or 0.0)

    def grid(self, centre: np.ndarray, side: float) -> np.ndarray:
        """Image coordinates (2, size, size) of the crop's pixel centres."""
        offsets = (np.arange(self.size) + 0.5 - self.size / 2) * (side / self.size)
        return np.stack(np.meshgrid(centre[0] + offsets, centre[1] + offsets, indexing="ij"))


def fixed_side(objects: Sequence[Objects], context: float, quantile: float = 0.95) -> float:
    """One crop side for every object: the ``quantile`` of the objects' larger extents, with their context."""
    extents = [max(s.stop - s.start for s in box) for obj in objects for box in obj.boxes()]
    return float(max(np.quantile(extents, quantile) * (1 + 2 * context), MIN_SIDE)) if extents else float(MIN_SIDE)


def crop_batch(obj: Objects, rows: np.ndarray, geometry: CropGeometry) -> np.ndarray:
    """Crops (n, C + 1, size, size) float32 of the objects at ``rows``: C image channels, then the mask."""
    boxes = obj.boxes()
    out = np.zeros((len(rows), obj.n_channels + 1, geometry.size, geometry.size), np.float32)
    h, w = obj.labels.shape
    for n, row in enumerate(np.asarray(rows, np.int64)):
        centre, side = geometry.box(boxes[row])
        coords = geometry.grid(centre, side)
        for c in range(obj.n_channels):
            out[n, c] = ndi.map_coordinates(obj.image[..., c], coords, order=1, mode="constant", cval=0.0)
        iy, ix = np.rint(coords[0]).astype(np.int64), np.rint(coords[1]).astype(np.int64)
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        mask = np.zeros(iy.shape, bool)
        mask[inside] = obj.labels[iy[inside], ix[inside]] == obj.ids[row]
        out[n, -1] = mask
    return out


def to_image(crop_map: np.ndarray, obj: Objects, row: int, geometry: CropGeometry
             ) -> tuple[np.ndarray, tuple[slice, slice]]:
    """``crop_map`` (size x size) resampled onto the image pixels its crop covers: ``(data, region)``.

    ``region`` is where ``data`` lies in the image (clipped to the image).
    """
    centre, side = geometry.box(obj.boxes()[row])
    h, w = obj.labels.shape
    lo = np.maximum(np.ceil(centre - side / 2), 0).astype(int)
    hi = np.minimum(np.floor(centre + side / 2), [h - 1, w - 1]).astype(int) + 1
    ys, xs = np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1])
    scale = geometry.size / side
    u = (ys - centre[0]) * scale + geometry.size / 2 - 0.5
    v = (xs - centre[1]) * scale + geometry.size / 2 - 0.5
    coords = np.stack(np.meshgrid(u, v, indexing="ij"))
    data = ndi.map_coordinates(np.asarray(crop_map, np.float32), coords, order=1, mode="nearest")
    return data.astype(np.float32), (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])))
