"""Test-time views for 2D StarDist: the network's outputs averaged over flips and 90° turns.

A view transposes and/or flips the YX plane, runs the network, and maps its
probability and ray lengths back. Two details keep the views exact:

- StarDist predicts on a grid (every 2nd pixel): output cell ``i`` sits on
  pixel ``g*i``. A plain flip would put the grid on the odd pixels, so the
  flipped image is shifted by one pixel (a reflected pixel in front), which
  lands every output cell back on an original grid pixel.
- A ray points at angle ``2πk/R`` (y = sin, x = cos). Flipping Y maps ray ``k``
  to ``-k``, flipping X to ``R/2 - k``, and transposing to ``R/4 - k`` (all mod R).

3D models have no views: their rays (a golden spiral) are not symmetric under flips.
"""
from __future__ import annotations

from collections.abc import Callable
from itertools import product

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.stardist.settings import MAX_VIEWS


def view_list(n: int) -> list[tuple[bool, bool, bool]]:
    """The first ``n`` (1-8) views as (transpose, flip Y, flip X); the first is the image itself."""
    views = [(t, fy, fx) for t, fy, fx in product((False, True), repeat=3)]
    # order: identity, the two single flips, both flips, then the transposed four
    return views[: max(1, min(int(n), MAX_VIEWS))]


def ray_permutations(n_rays: int) -> dict[str, np.ndarray]:
    """Index maps of the rays under a Y flip, an X flip and a transpose (each its own inverse)."""
    if n_rays % 4:
        raise UserError(f"test-time views need a number of rays divisible by 4, and this model has {n_rays}",
                        "set the test-time views to 1")
    k = np.arange(n_rays)
    return {"y": (-k) % n_rays, "x": (n_rays // 2 - k) % n_rays, "t": (n_rays // 4 - k) % n_rays}


def averaged_forward(forward: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], x: np.ndarray, n_views: int,
                     grid: tuple[int, int], div_by: tuple[int, int], n_rays: int,
                     check: Callable[[], None] = lambda: None) -> tuple[np.ndarray, np.ndarray]:
    """``forward`` (one (Y, X, C) array -> prob (Y/g, X/g), dist (Y/g, X/g, R)) averaged over ``n_views`` views.

    ``x``'s Y and X must be multiples of ``div_by`` (and so of the grid). ``check`` runs before each view
    (a cancel token's check).
    """
    perm = ray_permutations(n_rays)
    prob_sum, dist_sum = None, None
    views = view_list(n_views)
    for transpose, flip_y, flip_x in views:
        check()
        v = x.transpose(1, 0, 2) if transpose else x
        gy, gx = (grid[1], grid[0]) if transpose else grid
        dy, dx = (div_by[1], div_by[0]) if transpose else div_by
        ny, nx = v.shape[0] // gy, v.shape[1] // gx
        if flip_y:
            v = np.pad(v[::-1], ((1, dy - 1), (0, 0), (0, 0)), mode="reflect")
        if flip_x:
            v = np.pad(v[:, ::-1], ((0, 0), (1, dx - 1), (0, 0)), mode="reflect")
        prob, dist = forward(np.ascontiguousarray(v))
        # output cell j of the shifted flip sits on pixel n*g - g*j of the unflipped view: cells n..1
        if flip_y:
            prob, dist = prob[ny:0:-1], dist[ny:0:-1][..., perm["y"]]
        if flip_x:
            prob, dist = prob[:, nx:0:-1], dist[:, nx:0:-1][..., perm["x"]]
        if transpose:
            prob, dist = prob.T, dist.transpose(1, 0, 2)[..., perm["t"]]
        prob_sum = prob.astype(np.float64) if prob_sum is None else prob_sum + prob
        dist_sum = dist.astype(np.float64) if dist_sum is None else dist_sum + dist
    return (prob_sum / len(views)).astype(np.float32), (dist_sum / len(views)).astype(np.float32)
