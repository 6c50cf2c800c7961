"""CARE: supervised restoration from pairs (low -> high signal, low -> high resolution, any image -> image).

The network and the model folder are the shared ones of :mod:`.network`;
this module checks the training pairs and holds the loss.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.axes import default_axes, normalize_axes
from napari_dlmicro.core.models.restoration import upsample

LOSSES = ("l1", "l2")


def _axes_of(image: np.ndarray, axes: str | None) -> str:
    return normalize_axes(axes or default_axes(image.ndim, image.shape), image.ndim)


def _channels(shape: tuple[int, ...], axes: str) -> int:
    return shape[axes.index("C")] if "C" in axes else 1


def check_pairs(images: Sequence[np.ndarray], targets: Sequence[np.ndarray], axes: str | None = None,
                factor: int = 1, names: Sequence[str] | None = None) -> tuple[int, ...]:
    """Raise a clear :class:`UserError` unless every input has a fitting target; return the per-axis factors.

    A target fits when it has its input's axes, channels and time points, and
    its input's spatial size (``factor`` 1) or ``factor`` times that along Y
    and X, or along Z alone (see :func:`.upsample.pair_factors`); every pair
    must grow along the same axes. The factors are per spatial axis, in
    ``ZYX`` order.
    """
    if len(images) != len(targets):
        raise UserError(f"CARE needs one target per input: got {len(images)} inputs and {len(targets)} targets",
                        "give the same number of input and target images, paired by file name")
    if not images:
        raise UserError("CARE got no training pairs", "give at least one input image and its target")
    if factor not in upsample.FACTORS:
        raise UserError(f"an upsampling factor of {factor} is not supported",
                        f"use one of {', '.join(map(str, upsample.FACTORS))}")
    found: tuple[int, ...] | None = None
    for i, (a, b) in enumerate(zip(images, targets)):
        a, b = np.asarray(a), np.asarray(b)
        name = names[i] if names else (f"pair {i + 1}" if len(images) > 1 else "the pair")
        in_axes = _axes_of(a, axes)
        if b.ndim != a.ndim:
            if "C" in in_axes and b.ndim == a.ndim - 1:
                raise UserError(f"{name}: the input has {_channels(a.shape, in_axes)} channels (axes {in_axes}, "
                                f"{a.shape}) but its target has none ({b.shape})",
                                "give each target as many channels as its input")
            raise UserError(f"{name}: the input is {a.shape} (axes {in_axes}) but its target is {b.shape}, "
                            f"with {b.ndim} axes instead of {a.ndim}",
                            "give each target the axes of its input (channels included)")
        if _channels(a.shape, in_axes) != _channels(b.shape, in_axes):
            raise UserError(f"{name}: the input has {_channels(a.shape, in_axes)} channels but its target has "
                            f"{_channels(b.shape, in_axes)} (axes {in_axes}: {a.shape} and {b.shape})",
                            "give each target as many channels as its input")
        if "T" in in_axes and a.shape[in_axes.index("T")] != b.shape[in_axes.index("T")]:
            t = in_axes.index("T")
            raise UserError(f"{name}: the input has {a.shape[t]} time points but its target {b.shape[t]}",
                            "give a target for every time point")
        spatial = "".join(x for x in "ZYX" if x in in_axes)
        low = [a.shape[in_axes.index(x)] for x in spatial]
        high = [b.shape[in_axes.index(x)] for x in spatial]
        factors = upsample.pair_factors(low, high, factor, spatial, name)
        if found is not None and factors != found:
            grown = (upsample.factor_axes(found, spatial), upsample.factor_axes(factors, spatial))
            raise UserError(f"{name} is upsampled along {grown[1]} but the pairs before it along {grown[0]}",
                            "give pairs that all grow along the same axes")
        found = factors
        if upsample.factor_axes(factors, spatial) == "Z":
            upsample.check_planes(low[0], f"{name}: the input stack")
    return found


def care_loss(pred: torch.Tensor, target: torch.Tensor, loss: str = "l1") -> torch.Tensor:
    """Mean absolute (``l1``) or mean squared (``l2``) error."""
    diff = pred - target
    return diff.abs().mean() if loss == "l1" else (diff * diff).mean()
