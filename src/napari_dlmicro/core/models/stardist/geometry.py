"""StarDist candidates to labels: NMS and rendering, as plain picklable functions.

Kept free of torch so that the helper process of :mod:`.offload`, and a
dask worker that only renders, start fast.

stardist's 2D NMS opens an OpenMP parallel region for every candidate it
keeps, each over the few neighbours of that candidate: on two cores its
threads spend their time waiting for each other (541 candidates: 0.02 s on
one thread, 0.6 to 1.3 s on two, on a loaded machine). The 2D NMS therefore
runs on one OpenMP thread, set for the calling thread only and restored
after; the result does not depend on the thread count. The 3D NMS does real
work per pair of candidates and keeps OpenMP's default (two threads halved
its time).
"""
from __future__ import annotations

import functools

import numpy as np
import stardist.lib.stardist2d  # noqa: F401  (loads stardist's OpenMP runtime before it is looked up)
from stardist.geometry import polygons_to_label, polyhedron_to_label
from stardist.nms import non_maximum_suppression_3d_sparse, non_maximum_suppression_sparse
from stardist.rays3d import rays_from_json
from threadpoolctl import ThreadpoolController

NMS_2D_THREADS = 1


@functools.cache
def _openmp() -> ThreadpoolController:
    """The OpenMP runtimes loaded in this process, looked up once (stardist's C code runs on one of them)."""
    return ThreadpoolController().select(user_api="openmp")


def nms_render(points: np.ndarray, prob: np.ndarray, dist: np.ndarray, shape: tuple[int, ...],
               nms_thresh: float, rays_json: dict | None = None) -> np.ndarray:
    """Non-maximum suppression over star-convex candidates, then the label image.

    2D when ``rays_json`` is None; 3D polyhedra along those rays otherwise.
    """
    return nms_objects(points, prob, dist, shape, nms_thresh, rays_json)[0]


def nms_objects(points: np.ndarray, prob: np.ndarray, dist: np.ndarray, shape: tuple[int, ...],
                nms_thresh: float, rays_json: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`nms_render`, also giving the seeds: label ``i + 1`` is the object of ``points[i]``, ``prob[i]``.

    Higher-probability objects are painted over lower ones.
    """
    ndim = len(shape)
    if len(prob) == 0:
        return np.zeros(shape, np.int32), np.zeros((0, ndim), int), np.zeros(0, np.float32)
    if rays_json is None:
        with _openmp().limit(limits=NMS_2D_THREADS):  # OpenMP's thread count is per thread: others keep theirs
            points, prob, dist, _ = non_maximum_suppression_sparse(dist, prob, points, nms_thresh=nms_thresh)
        return polygons_to_label(dist, points, shape=shape, prob=prob), points, prob
    rays = rays_from_json(rays_json)
    points, prob, dist, _ = non_maximum_suppression_3d_sparse(dist, prob, points, rays, nms_thresh=nms_thresh)
    # stardist numbers polyhedron i as i + 1 (the most probable wins an overlap): the seeds need no reordering
    labels = polyhedron_to_label(dist, points, rays=rays, prob=prob, shape=shape, verbose=False)
    return np.asarray(labels, np.int32), points, prob
