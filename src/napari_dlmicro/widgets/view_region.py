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
    data_shape = [n for a, n in zip(axes, layer.data.shape[: layer.data.ndim - (1 if layer.rgb else 0)])]
    displayed = set(viewer.dims.displayed)
    offset = viewer.dims.ndim - ndim
    point = layer.world_to_data(viewer.dims.point) if hasattr(layer, "world_to_data") else viewer.dims.point
    point = list(point)[-ndim:]
    corners = np.asarray(getattr(layer, "corner_pixels", np.zeros((2, 0))))
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
