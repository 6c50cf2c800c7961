"""What is in view: the current plane and the visible field of a layer, as a region."""
from __future__ import annotations

import numpy as np


def visible_region(viewer, layer, axes: str) -> dict:
    """``{axis: index or slice}`` covering the displayed plane and field of ``layer``.

    Axes not displayed are fixed at the current slider position; displayed
    spatial axes are cropped to the corner pixels napari computes for the
    canvas (the whole extent when it has not drawn yet).
    """
    axes = axes.replace("C", "").replace("S", "")
    ndim = len(axes)
    rgb = 1 if getattr(layer, "rgb", False) else 0  # Labels layers have no rgb
    data_shape = [n for a, n in zip(axes, layer.data.shape[: layer.data.ndim - rgb])]
    displayed = set(viewer.dims.displayed)
    offset = viewer.dims.ndim - ndim
    point = layer.world_to_data(viewer.dims.point) if hasattr(layer, "world_to_data") else viewer.dims.point
    point = list(point)[-ndim:]
    corners = np.asarray(getattr(layer, "corner_pixels", np.zeros((2, 0))), float)
    if getattr(layer, "multiscale", False) and corners.size:
        # a pyramid's corners are in the pixels of the level on screen; the region is in level 0's
        corners = corners * np.asarray(layer.downsample_factors[layer.data_level])
    region: dict = {}
    for i, a in enumerate(axes):
        n = data_shape[i]
        if (i + offset) not in displayed:
            region[a] = int(np.clip(round(point[i]), 0, n - 1))
        elif corners.shape[-1] >= ndim:
            lo, hi = int(corners[0, -ndim + i]), int(corners[1, -ndim + i]) + 1
            lo, hi = max(0, lo), min(n, hi)
            region[a] = slice(lo, hi) if hi - lo >= 16 else slice(0, n)
        else:
            region[a] = slice(0, n)
    return region


def overlaps_view(viewer, layer, region: tuple) -> bool:
    """True when ``region`` (level 0 pixels: a slice or an index per axis of ``layer``) meets what is in view.

    Errs towards True: a layer napari has not drawn yet counts as all in view.
    """
    if layer.ndim > 4 or len(region) != layer.ndim:
        return True
    view = visible_region(viewer, layer, "TZYX"[-layer.ndim:])
    for r, v in zip(region, view.values()):
        lo, hi = (r.start, r.stop) if isinstance(r, slice) else (int(r), int(r) + 1)
        if isinstance(v, slice):
            if hi <= v.start or lo >= v.stop:
                return False
        elif not lo <= v < hi:
            return False
    return True
