"""Helpers of the blockwise tests: small local models, and OME-Zarr stores written by ome-zarr."""
from __future__ import annotations

import numpy as np
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from napari_dlmicro.core.models.base import ModelInfo, Segmenter
from napari_dlmicro.core.models.restoration.network import build_model, save_restoration


class BlobSegmenter(Segmenter):
    """Smooth, threshold and split blobs from their maxima: a local, deterministic model with real objects."""

    margin = (8, 8, 8)

    def __init__(self, ndim: int = 2) -> None:
        self.info = ModelInfo(name=f"blobs{ndim}d", kind="blobs", spatial_ndim=ndim, n_channels=1)
        self.margin = (8,) * ndim
        self.calls = 0

    def segment(self, image, settings, token, tile=None):
        self.calls += 1
        token.check()
        x = ndimage.gaussian_filter(image[..., 0], 2)
        fg = x > 0.35
        peaks = peak_local_max(x, min_distance=4, labels=fg.astype(int), exclude_border=False)
        markers = np.zeros(x.shape, np.int32)
        if len(peaks):
            markers[tuple(np.asarray(peaks).reshape(-1, x.ndim).T)] = np.arange(1, len(peaks) + 1)
        yield from ()
        return watershed(-x, markers, mask=fg)


def write_ngff(path, data, axes, version="0.4", chunks=None, scale=None):
    """An OME-Zarr image written by ome-zarr itself (0.4 on Zarr v2, 0.5 on Zarr v3)."""
    fmt = FormatV04() if version == "0.4" else FormatV05()
    root = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    chunks = chunks or tuple(min(n, 128) if a in "yx" else 1 for a, n in zip(axes, data.shape))
    write_image(data, root, axes=axes, fmt=fmt, scale=scale, storage_options={"chunks": chunks})
    return path


def restoration_folder(folder, kind: str, image: np.ndarray, target_high: float | None = None):
    """A small untrained N2V or CARE model (depth 2, 8 filters) saved to ``folder``, normalised for ``image``.

    N2V keeps the fixed range of ``image``; CARE normalises each image by its
    own percentiles and maps outputs to ``0 .. target_high``.
    """
    lo, hi = (float(v) for v in np.percentile(image, [1.0, 99.8]))
    norm = {"percentiles": [1.0, 99.8], "input_mode": "dataset", "input": {"low": [lo], "high": [hi]}}
    if kind == "care":
        norm.update(input_mode="per_image", target={"low": [0.0], "high": [float(target_high or hi)]})
    return save_restoration(build_model(kind, 2, 1, 2, 8, {"normalization": norm, "channels": "independent"}),
                            folder)
