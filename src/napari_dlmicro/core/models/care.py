"""CARE: supervised restoration from pairs (low -> high signal, or any image -> image).

The network and the model folder are the shared ones of ``restoration.py``;
this module checks the training pairs, matches pair files by name and holds
the loss.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError


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


def match_pairs(image_files: Sequence[Path], target_files: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Pair input and target files by file name; a missing partner is an error."""
    by_name = {Path(t).name: Path(t) for t in target_files}
    missing = [Path(f).name for f in image_files if Path(f).name not in by_name]
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise UserError(f"{len(missing)} input(s) have no target of the same file name ({shown})",
                        "name each target file exactly like its input file, in the targets folder")
    extra = set(by_name) - {Path(f).name for f in image_files}
    if extra:
        raise UserError(f"{len(extra)} target(s) have no input of the same name ({', '.join(sorted(extra)[:3])})",
                        "remove them or add their inputs")
    return [(Path(f), by_name[Path(f).name]) for f in image_files]


def care_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (CARE's default: robust to a few bright outliers)."""
    return (pred - target).abs().mean()
