"""Axis strings (``TZCYX`` and friends) and moving data into a canonical order."""
from __future__ import annotations

import numpy as np

from napari_dlmicro.core.errors import UserError

CANONICAL = "TZYXC"  # the order jobs work in
FILE_AXES = "TCZYXS"  # the letters files use (S: RGB samples)
ALIASES = {"S": "C"}  # RGB samples are channels


def normalize_axes(axes: str, ndim: int) -> str:
    """Upper-case, aliases resolved, checked against the array's ``ndim``."""
    axes = "".join(ALIASES.get(a, a) for a in axes.upper())
    if len(axes) != ndim:
        raise UserError(f"axes '{axes}' name {len(axes)} dimensions but the image has {ndim}",
                        f"give one letter per dimension from {CANONICAL}, e.g. {default_axes(ndim)}")
    bad = set(axes) - set(CANONICAL)
    if bad:
        raise UserError(f"axes '{axes}' use unknown letters {''.join(sorted(bad))}", f"use letters from {CANONICAL}")
    if len(set(axes)) != len(axes):
        raise UserError(f"axes '{axes}' repeat a letter", "name each dimension once")
    if "Y" not in axes or "X" not in axes:
        raise UserError(f"axes '{axes}' lack Y and X", "every image needs Y and X axes")
    return axes


def default_axes(ndim: int, shape: tuple[int, ...] | None = None) -> str:
    """A guess for plain arrays: YX, ZYX (or YXC for RGB), TZYX, TZCYX."""
    if ndim == 2:
        return "YX"
    if ndim == 3:
        return "YXC" if shape is not None and shape[-1] in (3, 4) else "ZYX"
    if ndim == 4:
        return "TZYX"
    if ndim == 5:
        return "TZCYX"
    raise UserError(f"a {ndim}-dimensional image is not supported", "give an image with 2 to 5 dimensions")


def to_canonical(data: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """Transpose ``data`` so its axes follow ``TZYXC`` order (missing axes stay missing)."""
    order = [a for a in CANONICAL if a in axes]
    return np.transpose(data, [axes.index(a) for a in order]), "".join(order)
