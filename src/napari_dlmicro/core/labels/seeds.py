"""One seed point per object: the pixel deepest inside it, for deciding which block owns an object."""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries


def deepest_points(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, seeds, sizes)`` for every object of ``labels``.

    The seed of an object is its pixel farthest from its outline (the first
    such pixel in raster order), so it lies inside the object even when the
    object is not convex, and two views that agree on the object agree on it.
    ``sizes`` are pixel counts.
    """
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not len(ids):
        return ids.astype(np.int64), np.zeros((0, labels.ndim), np.int64), np.zeros(0, np.float32)
    inside = (labels > 0) & ~find_boundaries(labels, mode="inner")
    # squared depth, exact in integers; ties go to the first pixel in raster order (one key per pixel, no
    # two equal), which ndimage's maximum_position alone does not promise: two blocks that hold the same
    # symmetric object must pick the same seed, or neither owns it
    depth = np.rint(ndimage.distance_transform_edt(inside) ** 2).astype(np.int64)
    key = depth * labels.size - np.arange(labels.size, dtype=np.int64).reshape(labels.shape)
    seeds = np.asarray(ndimage.maximum_position(key, labels, ids), np.int64).reshape(len(ids), labels.ndim)
    sizes = np.asarray(ndimage.sum_labels(np.ones(labels.shape, np.float32), labels, ids), np.float32)
    return ids.astype(np.int64), seeds, sizes
