"""Editing label images: the operations behind the Annotation dock's buttons.

Plain numpy/scipy on arrays (2D, or 3D plane by plane where it matters), so
the same edits work headless and are tested without Qt. Every function
returns a new array (or edits a copy of the plane it is given) and never
changes the caller's array unless it says so.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line
from skimage.segmentation import relabel_sequential as _relabel

from napari_dlmicro.core.errors import UserError


def _labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise UserError(f"labels must be integers, not {labels.dtype}", "use a Labels layer")
    return labels


def next_free_id(labels: np.ndarray) -> int:
    """One more than the largest id in use (1 for an empty annotation)."""
    labels = _labels(labels)
    return int(labels.max()) + 1 if labels.size else 1


def _index(labels: np.ndarray, point: Sequence[float]) -> tuple[int, ...]:
    idx = tuple(int(round(float(p))) for p in point)[-labels.ndim:]
    if len(idx) != labels.ndim or any(not 0 <= i < n for i, n in zip(idx, labels.shape)):
        raise UserError(f"the point {tuple(point)} lies outside the annotation of shape {labels.shape}",
                        "click inside the labels layer")
    return idx


def id_at(labels: np.ndarray, point: Sequence[float]) -> int:
    """The label id at ``point`` (data coordinates)."""
    labels = _labels(labels)
    return int(labels[_index(labels, point)])


def delete_at(labels: np.ndarray, point: Sequence[float], in_plane: bool = False) -> tuple[np.ndarray, int]:
    """Remove the object under ``point``; returns the new labels and the id removed (0: none).

    For 3D labels with ``in_plane`` only the object's pixels in the Z plane of
    ``point`` go (plane by plane annotation); otherwise the whole object.
    """
    labels = _labels(labels)
    if in_plane and labels.ndim == 3:
        z = _index(labels, point)[0]
        out = labels.copy()
        out[z], oid = delete_at(labels[z], point[-2:])
        return out, oid
    oid = id_at(labels, point)
    return delete_id(labels, oid), oid


def delete_id(labels: np.ndarray, oid: int) -> np.ndarray:
    """Remove object ``oid`` everywhere (0, the background, removes nothing)."""
    out = _labels(labels).copy()
    if oid:
        out[out == oid] = 0
    return out


def fill_holes(labels: np.ndarray, plane_by_plane: bool = True) -> np.ndarray:
    """Fill the holes inside every object (3D: in each Z plane when ``plane_by_plane``)."""
    labels = _labels(labels)
    if labels.ndim == 3 and plane_by_plane:
        return np.stack([fill_holes(p) for p in labels])
    out = labels.copy()
    for oid, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        region = labels[sl] == oid
        filled = ndi.binary_fill_holes(region)
        holes = filled & ~region & (out[sl] == 0)
        out[sl][holes] = oid
    return out


def remove_small(labels: np.ndarray, min_size: int) -> tuple[np.ndarray, int]:
    """Remove objects with fewer than ``min_size`` pixels; returns labels and how many went."""
    labels = _labels(labels)
    if min_size < 1:
        return labels.copy(), 0
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    small = ids[counts < min_size]
    out = labels.copy()
    if small.size:
        out[np.isin(out, small)] = 0
    return out, int(small.size)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Ids 1..N in order of first appearance in the sorted id list, background kept at 0."""
    labels = _labels(labels)
    return _relabel(labels)[0]


def merge(labels: np.ndarray, a: int, b: int) -> np.ndarray:
    """Object ``b`` becomes part of object ``a``."""
    labels = _labels(labels)
    a, b = int(a), int(b)
    if a == 0 or b == 0:
        raise UserError("merging needs two objects, but one of the points is background", "click on two objects")
    out = labels.copy()
    out[out == b] = a
    return out


def merge_at(labels: np.ndarray, p: Sequence[float], q: Sequence[float],
             in_plane: bool = False) -> tuple[np.ndarray, int]:
    """Merge the objects under two points; returns labels and the id kept.

    For 3D labels with ``in_plane``, two points in the same Z plane merge the
    objects in that plane only; points in different planes always join the
    two objects in the whole volume (linking one object across planes).
    """
    labels = _labels(labels)
    a, b = id_at(labels, p), id_at(labels, q)
    if a == b:
        raise UserError("both points lie on the same object", "pick points on two different objects")
    if in_plane and labels.ndim == 3:
        z, zq = _index(labels, p)[0], _index(labels, q)[0]
        if z == zq:
            out = labels.copy()
            out[z] = merge(labels[z], a, b)
            return out, a
    return merge(labels, a, b), a


def _line_pixels(points: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rr, cc = [], []
    for p, q in zip(points[:-1], points[1:]):
        r, c = line(int(round(p[0])), int(round(p[1])), int(round(q[0])), int(round(q[1])))
        rr.append(r)
        cc.append(c)
    r, c = np.concatenate(rr), np.concatenate(cc)
    ok = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    return r[ok], c[ok]


def split_along_line(labels: np.ndarray, line_points: Sequence[Sequence[float]],
                     plane: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Cut the object(s) a drawn polyline crosses into separate objects.

    The line's pixels (thickened to 4-connectivity) become background inside
    each crossed object; each piece gets its own id (the largest keeps the
    old one), and the cut pixels go back to the nearest piece. For 3D labels
    the cut is made in Z ``plane`` (plane by plane annotation), and the new
    ids are free in the whole volume. Returns the labels and the new ids.
    """
    labels = _labels(labels)
    pts = np.asarray(line_points, float)
    if pts.ndim != 2 or len(pts) < 2:
        raise UserError("a split needs a line of at least two points", "draw a line across the object")
    if labels.ndim == 3:
        if plane is None:
            raise UserError("a 3D annotation is split one Z plane at a time", "pass the plane to cut")
        if not 0 <= plane < labels.shape[0]:
            raise UserError(f"plane {plane} lies outside the annotation's {labels.shape[0]} planes",
                            "draw the line on a plane of the stack")
        out = labels.copy()
        out[plane], new = _split_2d(labels[plane], pts, next_free_id(labels))
        return out, new
    if labels.ndim != 2:
        raise UserError(f"cannot split objects of a {labels.ndim}D annotation", "use 2D or 3D labels")
    return _split_2d(labels, pts, next_free_id(labels))


def _split_2d(labels: np.ndarray, pts: np.ndarray, next_id: int) -> tuple[np.ndarray, list[int]]:
    """:func:`split_along_line` in one plane; new pieces get ``next_id``, ``next_id + 1``..."""
    r, c = _line_pixels(pts[:, -2:], labels.shape)
    cut = np.zeros(labels.shape, bool)
    cut[r, c] = True
    cut |= ndi.binary_dilation(cut, structure=np.array([[0, 0, 0], [0, 1, 1], [0, 1, 0]], bool))
    out = labels.copy()
    new_ids: list[int] = []
    for oid in np.unique(labels[cut]):
        if oid == 0:
            continue
        obj = labels == oid
        pieces, n = ndi.label(obj & ~cut)
        if n < 2:
            continue
        sizes = ndi.sum(np.ones_like(pieces), pieces, index=np.arange(1, n + 1))
        order = np.argsort(sizes)[::-1] + 1
        ids = np.zeros(n + 1, out.dtype)
        ids[order[0]] = oid
        for k in order[1:]:
            ids[k] = next_id
            new_ids.append(next_id)
            next_id += 1
        relabeled = ids[pieces]
        # cut pixels of this object go to the nearest piece
        _, (iy, ix) = ndi.distance_transform_edt(relabeled == 0, return_indices=True)
        nearest = relabeled[iy, ix]
        out[obj] = nearest[obj]
    if not new_ids:
        raise UserError("the line does not cut any object into two pieces", "draw the line right across an object")
    return out, new_ids


def crop_slices(bounds: Sequence[Sequence[float]], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices of the spatial region ``bounds`` (min corner, max corner; last axes Y, X) clipped to ``shape``.

    Axes before the ones ``bounds`` covers are kept whole.
    """
    lo, hi = np.asarray(bounds[0], float), np.asarray(bounds[1], float)
    n = min(len(lo), len(shape))
    lo, hi = lo[-n:], hi[-n:]
    out = [slice(None)] * (len(shape) - n)
    for a, b, size in zip(lo, hi, shape[-n:]):
        a, b = sorted((a, b))
        start, stop = max(0, int(np.floor(a))), min(size, int(np.ceil(b)))
        if stop - start < 1:
            raise UserError("the region of interest lies outside the image", "draw the rectangle over the image")
        out.append(slice(start, stop))
    return tuple(out)
