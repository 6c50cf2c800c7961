"""Per-object features for the fast classifier: shape, intensity per channel and texture per channel.

- shape (pixels): area, perimeter, circularity, eccentricity, solidity,
  extent, major and minor axis lengths and their ratio (3D: volume, solidity,
  extent and axis lengths);
- intensity, per channel of the normalised image: mean, standard deviation,
  minimum, 10th percentile, median, 90th percentile, maximum, the mean of a
  ring two pixels wide around the object, and the object's contrast to it;
- texture, per channel: the mean gradient magnitude (Gaussian, sigma 1), the
  mean Laplacian of Gaussian at sigma 1 and 2, and the mean fine detail
  (the image less its Gaussian blur at sigma 2).

Intensity and texture come from whole-image filters summed per object
(``bincount``), so their cost grows with the pixels, not the objects; shape
goes object by object through scikit-image's ``regionprops`` in batches,
checking the cancel token between batches.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.objects import Objects, prepare
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, ProgressClock, run_to_end

SHAPE_2D = ("area", "perimeter", "circularity", "eccentricity", "solidity", "extent", "major_axis", "minor_axis",
            "elongation")
SHAPE_3D = ("volume", "solidity", "extent", "major_axis", "minor_axis", "elongation")
INTENSITY = ("mean", "std", "min", "p10", "median", "p90", "max", "ring", "contrast")
TEXTURE = ("gradient", "log1", "log2", "detail")
RING_PX = 2
BATCH = 500  # objects measured between two checks of the cancel token


@dataclass(frozen=True)
class ObjectFeatures:
    """One row of features per object: ``values[i]`` belongs to object ``ids[i]``.

    ``centroids`` (pixel coordinates, one row per object) place markers on
    objects, such as the suggestions of what to label next.
    """

    ids: np.ndarray  # (n,) int64, sorted
    values: np.ndarray  # (n, F) float32, finite
    names: tuple[str, ...]
    centroids: np.ndarray  # (n, ndim) float64
    n_channels: int
    ndim: int
    sizes: np.ndarray  # (n,) pixels of each object
    at_border: np.ndarray  # (n,) bool: the object touches the image border

    def rows(self, ids) -> np.ndarray:
        """Row indices of ``ids``; ids without a row are a :class:`UserError`."""
        ids = np.asarray(ids, np.int64).ravel()
        rows = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        missing = ids[self.ids[rows] != ids] if len(self.ids) else ids
        if missing.size:
            shown = ", ".join(str(int(i)) for i in missing[:5]) + (" ..." if missing.size > 5 else "")
            raise UserError(f"label {shown} is not an object of the mask", "label objects that are in the mask")
        return rows

    def has(self, label: int) -> bool:
        """True if object ``label`` was measured."""
        row = int(np.searchsorted(self.ids, label))
        return row < len(self.ids) and int(self.ids[row]) == int(label)

    def table(self) -> dict[str, np.ndarray]:
        """``label`` and one column per feature (a napari Labels layer's ``features``)."""
        return {"label": self.ids, **{n: self.values[:, j] for j, n in enumerate(self.names)}}


def feature_names(ndim: int, n_channels: int) -> tuple[str, ...]:
    """The names of the features of ``ndim``-D objects in an image of ``n_channels`` channels."""
    shape = SHAPE_2D if ndim == 2 else SHAPE_3D
    per_channel = tuple(f"{kind}_c{c}" for c in range(n_channels) for kind in INTENSITY + TEXTURE)
    return tuple(f"shape_{s}" for s in shape) + per_channel


def features_job(image, labels, token: CancelToken = NEVER, objects: Objects | None = None) -> Job:
    """Measure every object of ``labels`` over ``image``; yields progress, returns :class:`ObjectFeatures`.

    ``objects`` (already :func:`prepare`-d) skips the checks and normalisation.
    """
    obj = objects if objects is not None else prepare(image, labels)
    n = len(obj.ids)
    clock = ProgressClock(n + obj.n_channels * max(n // 4, 1), "measuring objects")
    yield clock.tick(0)
    shape, centroids = yield from _shape(obj, token, clock)
    columns = [shape]
    for c in range(obj.n_channels):
        token.check()
        columns.append(_channel(obj, c))
        yield clock.tick(n + (c + 1) * max(n // 4, 1), f"channel {c + 1} of {obj.n_channels}")
    values = np.nan_to_num(np.concatenate(columns, axis=1), nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    return ObjectFeatures(obj.ids, values, feature_names(obj.ndim, obj.n_channels), centroids, obj.n_channels,
                          obj.ndim, obj.sizes, obj.touches_border())


def object_features(image, labels, token: CancelToken = NEVER) -> ObjectFeatures:
    """Headless :func:`features_job`."""
    return run_to_end(features_job(image, labels, token))


def _shape(obj: Objects, token: CancelToken, clock: ProgressClock) -> Job:
    """Shape columns and centroids: moments, perimeters and extents at once; convex hulls object by object."""
    labels, ids, ndim = obj.labels, obj.ids, obj.ndim
    size = int(labels.max()) + 1
    fg = np.flatnonzero(labels)
    lab = labels.ravel()[fg]
    coords = np.unravel_index(fg, labels.shape)
    count = np.bincount(lab, minlength=size).astype(np.float64)
    n = np.maximum(count, 1)
    means = [np.bincount(lab, c.astype(np.float64), minlength=size) / n for c in coords]
    cov = np.empty((size, ndim, ndim))
    for i in range(ndim):
        for j in range(i, ndim):
            d = (coords[i] - means[i][lab]) * (coords[j] - means[j][lab])
            cov[:, i, j] = cov[:, j, i] = np.bincount(lab, d, minlength=size) / n
    eig = np.clip(np.linalg.eigvalsh(cov[ids]), 0, None)  # ascending
    area = count[ids]
    major, minor = _axis(eig[:, -1], ndim), _axis(eig[:, 0], ndim)
    elongation = np.divide(major, minor, out=np.zeros_like(major), where=minor > 0)
    boxes = obj.boxes()
    extent = area / np.array([np.prod([s.stop - s.start for s in b]) for b in boxes], np.float64)
    token.check()
    hulls = np.zeros(len(ids))
    border = _border(labels)
    yield clock.tick(len(ids) // 4, "measuring shapes")
    for start, hull in _hull_areas(labels, border, ids):
        hulls[start:start + len(hull)] = hull
        token.check()
        yield clock.tick(len(ids) // 4 + (start + len(hull)) * 3 // 4, "measuring shapes")
    solidity = np.divide(area, hulls, out=np.zeros_like(area), where=hulls > 0)
    centroids = np.stack([m[ids] for m in means], axis=1)
    if ndim == 3:
        return np.stack([area, solidity, extent, major, minor, elongation], axis=1), centroids
    perimeter = _perimeters(labels, border, size)[ids]
    circularity = np.divide(4 * np.pi * area, perimeter**2, out=np.zeros_like(area), where=perimeter > 0)
    eccentricity = np.sqrt(1 - np.divide(eig[:, 0], eig[:, -1], out=np.ones_like(area), where=eig[:, -1] > 0))
    return np.stack([area, perimeter, circularity, eccentricity, solidity, extent, major, minor, elongation],
                    axis=1), centroids


def _axis(variance: np.ndarray, ndim: int) -> np.ndarray:
    """The full length of an ellipse (2D) or ellipsoid (3D) axis of this variance, as scikit-image measures it."""
    return np.sqrt((16.0 if ndim == 2 else 20.0) * variance)


def _border(labels: np.ndarray) -> np.ndarray:
    """Object pixels with a face neighbour of another id (or outside the image)."""
    padded = np.pad(labels, 1)
    inner = tuple(slice(1, -1) for _ in range(labels.ndim))
    border = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        for step in (-1, 1):
            shifted = np.roll(padded, step, axis=axis)[inner]
            border |= shifted != labels
    return border & (labels > 0)


# scikit-image's perimeter: border pixels coded by their border neighbours of the same object (weights 10 for
# diagonal, 2 for face neighbours, 1 for itself), each code weighted by the outline length it stands for
_CODE_WEIGHTS = np.zeros(50)
_CODE_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_CODE_WEIGHTS[[21, 33]] = np.sqrt(2)
_CODE_WEIGHTS[[13, 23]] = (1 + np.sqrt(2)) / 2


def _perimeters(labels: np.ndarray, border: np.ndarray, size: int) -> np.ndarray:
    """The perimeter of every 2D object, as ``skimage.measure.perimeter`` gives it for that object alone."""
    lab_p, border_p = np.pad(labels, 1), np.pad(border, 1)
    h, w = labels.shape
    code = border.astype(np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == dx == 0:
                continue
            sl = (slice(1 + dy, 1 + dy + h), slice(1 + dx, 1 + dx + w))
            same = border_p[sl] & (lab_p[sl] == labels)
            code += (10 if dy and dx else 2) * same
    code = np.minimum(code, len(_CODE_WEIGHTS) - 1)
    return np.bincount(labels[border], _CODE_WEIGHTS[code[border]], minlength=size)


def _hull_areas(labels: np.ndarray, border: np.ndarray, ids: np.ndarray):
    """Convex hull area (2D) or volume (3D) of each object's pixel squares, in batches of :data:`BATCH`."""
    where = np.flatnonzero(border)
    lab = labels.ravel()[where]
    order = np.argsort(lab, kind="stable")
    where, lab = where[order], lab[order]
    coords = np.stack(np.unravel_index(where, labels.shape), axis=1).astype(np.float64)
    corners = np.array(np.meshgrid(*[(-0.5, 0.5)] * labels.ndim, indexing="ij")).reshape(labels.ndim, -1).T
    bounds = np.searchsorted(lab, np.concatenate([ids, [ids[-1] + 1]]))
    for start in range(0, len(ids), BATCH):
        stop = min(start + BATCH, len(ids))
        out = np.zeros(stop - start)
        for k in range(start, stop):
            points = (coords[bounds[k]:bounds[k + 1], None, :] + corners[None]).reshape(-1, labels.ndim)
            out[k - start] = _hull(points)
        yield start, out


def _hull(points: np.ndarray) -> float:
    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):
        return 0.0


def _channel(obj: Objects, c: int) -> np.ndarray:
    """Intensity and texture columns of channel ``c`` (one row per object)."""
    image = obj.image[..., c].astype(np.float32, copy=False)
    labels = obj.labels
    size = int(labels.max()) + 1
    fg = np.flatnonzero(labels)
    lab = labels.ravel()[fg]
    count = np.maximum(np.bincount(lab, minlength=size), 1).astype(np.float64)
    values = image.ravel()[fg].astype(np.float64)

    def mean_of(a: np.ndarray) -> np.ndarray:
        return np.bincount(lab, a.ravel()[fg].astype(np.float64), minlength=size) / count

    mean = np.bincount(lab, values, minlength=size) / count
    std = np.sqrt(np.maximum(np.bincount(lab, values**2, minlength=size) / count - mean**2, 0.0))
    q = _quantiles(lab, values, size, (0.0, 0.1, 0.5, 0.9, 1.0))
    ring = _ring_mean(labels, image, size, fallback=mean)
    texture = [
        mean_of(ndi.gaussian_gradient_magnitude(image, 1.0, truncate=3.0)),
        mean_of(ndi.gaussian_laplace(image, 1.0, truncate=3.0)),
        mean_of(ndi.gaussian_laplace(image, 2.0, truncate=3.0)),
        mean_of(np.abs(image - ndi.gaussian_filter(image, 2.0, truncate=3.0))),
    ]
    cols = [mean, std, q[0], q[1], q[2], q[3], q[4], ring, mean - ring, *texture]
    return np.stack([col[obj.ids] for col in cols], axis=1)


def _quantiles(lab: np.ndarray, val: np.ndarray, size: int, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per-label quantiles (linear interpolation, as ``np.percentile``) of the object pixels ``val``."""
    order = np.lexsort((val, lab))
    lab, val = lab[order], val[order]
    count = np.bincount(lab, minlength=size)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    out = []
    for q in qs:
        pos = q * np.maximum(count - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        frac = pos - lo
        idx_lo, idx_hi = np.minimum(start + lo, len(val) - 1), np.minimum(start + hi, len(val) - 1)
        out.append(np.where(count > 0, val[idx_lo] * (1 - frac) + val[idx_hi] * frac, 0.0))
    return out


def _ring_mean(labels: np.ndarray, image: np.ndarray, size: int, fallback: np.ndarray) -> np.ndarray:
    """Mean of the background pixels within :data:`RING_PX` (a square) of each object; its own mean where none are."""
    grown = ndi.maximum_filter(labels, size=2 * RING_PX + 1)  # between two objects, the higher id takes the ring
    ring = (labels == 0) & (grown > 0)
    owner = grown[ring]
    count = np.bincount(owner, minlength=size).astype(np.float64)
    total = np.bincount(owner, image[ring].astype(np.float64), minlength=size)
    return np.where(count > 0, total / np.maximum(count, 1), fallback)
