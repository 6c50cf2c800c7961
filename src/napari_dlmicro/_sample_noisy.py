"""npe2 sample data: a noisy copy of the bundled nuclei image, next to the clean one.

The noise is Poisson (shot noise at a low photon count) plus Gaussian
(camera read noise), drawn with a fixed seed, so every run of every test and
benchmark sees the same noisy pixels. Both images are float32 in the same
units, so PSNR between them is meaningful.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from stardist.data import test_image_nuclei_2d

LayerData = tuple[Any, dict[str, Any], str]

PEAK_PHOTONS = 10.0  # photons at the brightest clean pixel
READ_NOISE = 0.05  # read noise, as a fraction of the brightest clean pixel
SEED = 42


def noisy_nuclei_arrays(peak: float = PEAK_PHOTONS, read_noise: float = READ_NOISE,
                        seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(noisy, clean)`` float32 versions of the nuclei image, in the clean image's units."""
    clean = test_image_nuclei_2d().astype(np.float32)
    top = float(clean.max())
    rng = np.random.default_rng(seed)
    photons = rng.poisson(clean / top * peak).astype(np.float32)
    noisy = photons / peak * top + rng.normal(0.0, read_noise * top, clean.shape).astype(np.float32)
    return noisy.astype(np.float32), clean


def make_noisy_nuclei() -> list[LayerData]:
    """The noisy nuclei image and its clean original (for PSNR/SSIM in the denoising dock)."""
    noisy, clean = noisy_nuclei_arrays()
    hi = float(clean.max())
    return [
        (clean, {"name": "nuclei clean", "contrast_limits": (0.0, hi), "visible": False}, "image"),
        (noisy, {"name": "nuclei noisy", "contrast_limits": (0.0, hi)}, "image"),
    ]
