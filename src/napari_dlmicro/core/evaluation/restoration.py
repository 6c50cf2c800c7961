"""Restoration quality against a ground truth: PSNR as is and scale-invariant, and SSIM (scikit-image).

PSNR takes the ground truth's range (max - min of its finite pixels) as the
peak. *Scale-invariant* PSNR is CSBDeep's way of comparing restorations whose
intensities may be on another scale: the image is first mapped by the affine
``a * image + b`` that best fits the truth (least squares), then scored the
same way. A result that is right up to brightness and offset scores high on
the second and low on the first; the gap between the two is what its
intensities are off by.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import zoom
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_dlmicro.core.errors import UserError

SCORES = {"psnr": "PSNR (dB)", "psnr_si": "PSNR scale-inv. (dB)", "ssim": "SSIM"}


def _pair(truth: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    truth = np.asarray(truth, np.float64)
    image = np.asarray(image, np.float64)
    if truth.shape != image.shape:
        raise UserError(f"the ground truth is {truth.shape} but the image is {image.shape}",
                        "pick a ground-truth layer of the same shape")
    ok = np.isfinite(truth) & np.isfinite(image)
    if not ok.any():
        raise UserError("no pixel is finite in both images", "check the ground truth")
    truth = np.where(ok, truth, 0.0)
    image = np.where(ok, image, truth)
    span = float(truth[ok].max() - truth[ok].min())
    if span == 0:
        raise UserError("the ground truth is constant", "pick a ground truth with structure")
    return truth, image, span, ok


def psnr(truth: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, with the ground truth's range as the peak."""
    truth, image, span, _ = _pair(truth, image)
    return float(peak_signal_noise_ratio(truth, image, data_range=span))


def affine_fit(truth: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` minimising the mean squared error of ``a * image + b`` to ``truth`` (finite pixels)."""
    truth, image, _, ok = _pair(truth, image)
    x, y = image[ok], truth[ok]
    xc = x - x.mean()
    var = float(np.mean(xc * xc))
    a = float(np.mean(xc * (y - y.mean())) / var) if var > 0 else 0.0
    return a, float(y.mean() - a * x.mean())


def psnr_scale_invariant(truth: np.ndarray, image: np.ndarray) -> float:
    """PSNR (dB) of ``image`` after the affine map that fits it best to ``truth`` (see the module docstring)."""
    a, b = affine_fit(truth, image)
    return psnr(truth, a * np.asarray(image, np.float64) + b)


def ssim(truth: np.ndarray, image: np.ndarray) -> float:
    """Structural similarity (2D or 3D), with the ground truth's range."""
    truth, image, span, _ = _pair(truth, image)
    small = min(truth.shape)
    win = min(7, small if small % 2 else small - 1)
    if win < 3:
        raise UserError(f"the image {truth.shape} is too small for SSIM", "use at least 3 pixels along each axis")
    return float(structural_similarity(truth, image, data_range=span, win_size=win))


def quality(truth: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """``{'psnr': ..., 'psnr_si': ..., 'ssim': ...}`` of ``image`` against ``truth``."""
    return {"psnr": psnr(truth, image), "psnr_si": psnr_scale_invariant(truth, image), "ssim": ssim(truth, image)}


def upscaled(image: np.ndarray, shape: Sequence[int], order: int = 3) -> np.ndarray:
    """``image`` interpolated to ``shape`` (cubic spline; pixel centres kept, as a block average shrinks them).

    Each axis must grow by a whole factor (1 included); otherwise a :class:`UserError` naming both sizes.
    """
    image = np.asarray(image, np.float64)
    shape = tuple(int(n) for n in shape)
    if image.ndim != len(shape) or any(n % m for n, m in zip(shape, image.shape)):
        raise UserError(f"an image of {image.shape} cannot be compared with one of {shape}",
                        "compare images of the same size, or sizes a whole factor apart")
    if shape == image.shape:
        return image
    filled = np.where(np.isfinite(image), image, np.nanmedian(image))
    return zoom(filled, [n / m for n, m in zip(shape, image.shape)], order=order, mode="grid-mirror", grid_mode=True)


def compare(truth: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict[str, dict[str, float]]:
    """Quality of the input (``before``) and of the output (``after``) against ``truth``.

    An input smaller than the truth (the input of a super-resolution model) is
    scored after cubic interpolation to the truth's size, as the baseline the
    model has to beat. Module-level and picklable, so a worker can run it
    through ``offload.call`` (scikit-image's SSIM holds the GIL for long on
    large images).
    """
    before = np.asarray(before)
    if before.shape != np.shape(truth):
        before = upscaled(before, np.shape(truth))
    return {"input": quality(truth, before), "output": quality(truth, after)}


def quality_text(scores: dict[str, dict[str, float]]) -> str:
    """Two lines for a dock: the input's and the output's PSNR as is, scale-invariant, and SSIM."""
    lines = []
    for key, name in (("input", "input"), ("output", "output")):
        q = scores.get(key)
        if q:
            lines.append(f"{name}: PSNR {q['psnr']:.2f} dB (scale-invariant {q['psnr_si']:.2f} dB), "
                         f"SSIM {q['ssim']:.3f}")
    return "\n".join(lines)
