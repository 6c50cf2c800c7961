"""The package's cover: the test input beside what the model made of it (2:1, PNG)."""
from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from skimage.transform import resize

SIDE = 256  # pixels of each half of the cover


def _grey(image: np.ndarray) -> np.ndarray:
    """An image (spatial..., [3]) as RGB uint8, stretched between its 1st and 99.8th percentiles."""
    image = np.asarray(image, np.float64)
    lo, hi = np.percentile(image, (1, 99.8)) if image.size else (0.0, 1.0)
    scaled = np.clip((image - lo) / (hi - lo + 1e-12), 0, 1)
    rgb = scaled if scaled.ndim == 3 else np.repeat(scaled[..., None], 3, axis=-1)
    return (rgb * 255).astype(np.uint8)


def _coloured(ids: np.ndarray, distinct: bool) -> np.ndarray:
    """Label or class ids as RGB uint8: black background, a colour per id (hashed for objects)."""
    ids = np.asarray(ids).astype(np.int64)
    rng = np.random.default_rng(7)
    n = int(ids.max(initial=0)) + 1
    palette = rng.integers(64, 256, size=(max(n, 2), 3)).astype(np.uint8) if distinct else np.array(
        [[0, 0, 0], [230, 80, 60], [60, 180, 90], [70, 110, 230], [230, 200, 50], [180, 70, 200]] * (n // 6 + 1),
        np.uint8)
    palette[0] = 0
    return palette[ids]


def _square(rgb: np.ndarray, nearest: bool) -> np.ndarray:
    h, w = rgb.shape[:2]
    side = max(h, w)
    padded = np.zeros((side, side, 3), np.uint8)
    padded[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = rgb
    out = resize(padded, (SIDE, SIDE), order=0 if nearest else 1, preserve_range=True, anti_aliasing=not nearest)
    return out.astype(np.uint8)


def _plane(array: np.ndarray, ndim: int) -> np.ndarray:
    """The middle plane of a 3D array (Z first); 2D arrays as they are."""
    return array[array.shape[0] // 2] if ndim == 3 else array


def write_cover(path: Path, image: np.ndarray, output: np.ndarray, how: str, ndim: int) -> Path:
    """Write the cover: ``image`` (C, spatial...) left, ``output`` (spatial..., [C]) right, coloured as ``how``."""
    image = _plane(np.moveaxis(image, 0, -1), ndim)
    left = _grey(image[..., 0] if image.shape[-1] not in (3,) else image)
    output = _plane(output, ndim)
    if how == "image":
        right = _grey(output)
    else:
        right = _coloured(output, distinct=how == "labels")
    cover = np.concatenate([_square(left, False), _square(right, how != "image")], axis=1)
    iio.imwrite(path, cover, extension=".png")
    return path
