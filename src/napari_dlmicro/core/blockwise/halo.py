"""How much context a block needs around its core: the model's receptive field and the largest object.

With this halo, the owner of every object sees that object, everything that
competes with it (StarDist's NMS neighbours, Cellpose's flows) and every pixel
the network needs for them, exactly as a whole-image run does. An object that
still reaches the halo's edge makes its block look again with a larger halo.
"""
from __future__ import annotations

import math
from typing import Any

from napari_dlmicro.core.models.base import Segmenter

DEFAULT_OBJECT = {2: 48, 3: 32}  # largest object diameter (px) assumed for StarDist and semantic models
CELLPOSE_DIAMETER = 30.0  # Cellpose-SAM's own scale when no diameter is set
ALIGN = 16  # halos and block reads sit on this pooling grid (the div_by of StarDist and U-Nets up to depth 4)


def object_size(model: Segmenter, settings: dict[str, Any], given: int | None = None) -> int:
    """The largest object diameter, in pixels, that blocks must hold whole."""
    if given:
        return int(given)
    if model.info.kind == "cellpose":
        d = float(settings.get("diameter", 0) or 0) or CELLPOSE_DIAMETER
        return int(math.ceil(2 * d))
    return DEFAULT_OBJECT.get(model.info.spatial_ndim, 48)


def segmenter_halo(model: Segmenter, settings: dict[str, Any], ndim: int, given: int | None = None) -> tuple[int, ...]:
    """The halo per spatial axis for ``model``: its receptive margin plus twice the largest object.

    A class map (a semantic model) has no objects to keep whole: its margin is enough.
    """
    size = 0 if model.info.class_map else object_size(model, settings, given)
    margin = tuple(getattr(model, "margin", ()) or ())
    if len(margin) != ndim:
        margin = (32,) * ndim if model.info.kind != "cellpose" else (0,) * ndim
    return tuple(int(math.ceil((m + 2 * size) / ALIGN) * ALIGN) for m in margin)
