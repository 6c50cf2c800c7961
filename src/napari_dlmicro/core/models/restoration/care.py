"""CARE: supervised restoration from pairs (low -> high signal, or any image -> image).

The network and the model folder are the shared ones of ``restoration.py``;
this module checks the training pairs and holds the loss.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from napari_dlmicro.core.errors import UserError


def check_pairs(images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                names: Sequence[str] | None = None) -> None:
    """Raise a clear :class:`UserError` unless every input has a target of its shape."""
    if len(images) != len(targets):
        raise UserError(f"CARE needs one target per input: got {len(images)} inputs and {len(targets)} targets",
                        "give the same number of input and target images, paired by file name")
    if not images:
        raise UserError("CARE got no training pairs", "give at least one input image and its target")
    for i, (a, b) in enumerate(zip(images, targets)):
        if a.shape != b.shape:
            name = names[i] if names else f"pair {i + 1}"
            raise UserError(f"{name}: the input is {a.shape} but its target is {b.shape}",
                            "each target must have exactly the shape of its input (register and crop them alike)")


def care_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (CARE's default: robust to a few bright outliers)."""
    return (pred - target).abs().mean()
