"""Restoration quality against a ground truth: PSNR and SSIM (scikit-image)."""
from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from napari_dlmicro.core.errors import UserError


def _pair(truth: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
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
    return truth, image, span


def psnr(truth: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, with the ground truth's range as the peak."""
    truth, image, span = _pair(truth, image)
    return float(peak_signal_noise_ratio(truth, image, data_range=span))


def ssim(truth: np.ndarray, image: np.ndarray) -> float:
    """Structural similarity (2D or 3D), with the ground truth's range."""
    truth, image, span = _pair(truth, image)
    small = min(truth.shape)
    win = min(7, small if small % 2 else small - 1)
    if win < 3:
        raise UserError(f"the image {truth.shape} is too small for SSIM", "use at least 3 pixels along each axis")
    return float(structural_similarity(truth, image, data_range=span, win_size=win))


def quality(truth: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """``{'psnr': ..., 'ssim': ...}`` of ``image`` against ``truth``."""
    return {"psnr": psnr(truth, image), "ssim": ssim(truth, image)}


def compare(truth: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict[str, dict[str, float]]:
    """Quality of the input (``before``) and of the output (``after``) against ``truth``.

    Module-level and picklable, so a worker can run it through ``offload.call``
    (scikit-image's SSIM holds the GIL for long on large images).
    """
    return {"input": quality(truth, before), "output": quality(truth, after)}
