"""The test input a package ships: from the model's own data where it can be found, else from a sample image.

Models trained here record the files they were trained on (``config.data.sources``);
the first that still exists gives the test input. Without one (an official
StarDist folder, files moved away), StarDist's bundled sample images stand in:
the nuclei image (2D, one channel), the H&E image (2D, three channels) or the
nuclei volume (3D).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from stardist import data as stardist_samples

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.axes import default_axes, normalize_axes, to_canonical
from napari_dlmicro.core.io.tiff_read import read_image


def as_channels_first(data: np.ndarray, axes: str | None, ndim: int, n_channels: int) -> np.ndarray:
    """``data`` as (C, spatial...) for a ``ndim``-D model with ``n_channels`` channels.

    The first time point, the middle plane of a stack for a 2D model, the first
    ``n_channels`` channels.
    """
    data = np.asarray(data)
    axes = normalize_axes(axes or default_axes(data.ndim, data.shape), data.ndim)
    data, axes = to_canonical(data, axes)
    if "T" in axes:
        data, axes = data[0], axes.replace("T", "")
    if "Z" in axes and ndim == 2:
        data, axes = data[data.shape[0] // 2], axes.replace("Z", "")
    if "Z" not in axes and ndim == 3:
        raise UserError("the test image is 2D but the model is 3D", "give a z-stack as the test image")
    if "C" not in axes:
        data = data[..., None]
    if data.shape[-1] < n_channels:
        raise UserError(f"the test image has {data.shape[-1]} channel(s) but the model takes {n_channels}",
                        f"give a test image with {n_channels} channel(s)")
    return np.ascontiguousarray(np.moveaxis(data[..., :n_channels], -1, 0), np.float32)


def _own_data(config: dict[str, Any]) -> Path | None:
    data = config.get("data") or {}
    for source in data.get("sources") or []:
        path = Path(str(source))
        if path.is_file():
            return path
    return None


def _sample(ndim: int, n_channels: int) -> tuple[np.ndarray, str, str]:
    if ndim == 3:
        return stardist_samples.test_image_nuclei_3d(), "ZYX", "StarDist's 3D nuclei sample"
    if n_channels == 3:
        return stardist_samples.test_image_he_2d(), "YXC", "StarDist's H&E sample"
    return stardist_samples.test_image_nuclei_2d(), "YX", "StarDist's nuclei sample"


def choose_test_input(given: np.ndarray | str | Path | None, axes: str | None, config: dict[str, Any], ndim: int,
               n_channels: int) -> tuple[np.ndarray, str]:
    """The raw test image (C, spatial...) and where it came from."""
    if isinstance(given, np.ndarray):
        return as_channels_first(given, axes, ndim, n_channels), "the given test image"
    path = Path(given) if given is not None else _own_data(config)
    if path is not None:
        image = read_image(path)
        return as_channels_first(image.data, axes or image.axes, ndim, n_channels), f"{path.name} (its own data)"
    data, sample_axes, what = _sample(ndim, n_channels)
    if n_channels not in (1, 3):
        data = np.repeat(data[..., None], n_channels, axis=-1)
        sample_axes += "C"
    return as_channels_first(data, sample_axes, ndim, n_channels), what
