"""Percentile normalisation, the same for training and prediction."""
from __future__ import annotations

import numpy as np

from napari_dlmicro.core.errors import UserError


def percentile_range(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, axis=None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``low`` and ``high`` percentiles of the finite pixels of ``image``.

    float32, or float64 for a float64 image (whose values may not fit in float32).
    """
    if not 0 <= low < high <= 100:
        raise UserError(
            f"normalisation percentiles {low} and {high} are not in order",
            "pick a low percentile below the high one, both between 0 and 100",
        )
    finite = np.isfinite(image)
    if not finite.all():
        image = np.where(finite, image, np.nan)
        lo = np.nanpercentile(image, low, axis=axis, keepdims=axis is not None)
        hi = np.nanpercentile(image, high, axis=axis, keepdims=axis is not None)
    else:
        lo = np.percentile(image, low, axis=axis, keepdims=axis is not None)
        hi = np.percentile(image, high, axis=axis, keepdims=axis is not None)
    kind = np.float64 if np.asarray(image).dtype == np.float64 else np.float32
    return np.asarray(lo, kind), np.asarray(hi, kind)


def normalize_percentile(
    image: np.ndarray, low: float = 1.0, high: float = 99.8, axis=None, eps: float = 1e-20
) -> np.ndarray:
    """Map the ``low``/``high`` percentiles of ``image`` to 0 and 1 (float32).

    Non-finite pixels are set to 0 after scaling, so one NaN cannot blank the
    whole output.
    """
    image = np.asarray(image)
    lo, hi = percentile_range(image, low, high, axis)
    out = (image.astype(lo.dtype, copy=False) - lo) / (hi - lo + eps)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)


def normalized(image: np.ndarray, mask_ndim: int) -> np.ndarray:
    """Percentile-normalise over the spatial axes, per channel (as the segmentation job does).

    ``image`` has the ``mask_ndim`` spatial axes of its mask, and maybe a trailing channel axis.
    """
    image = np.asarray(image, np.float32)
    if image.ndim == mask_ndim:
        return normalize_percentile(image)
    return normalize_percentile(image, axis=tuple(range(mask_ndim)))
