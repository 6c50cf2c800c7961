"""Fixtures of the blockwise tests."""
from __future__ import annotations

import numpy as np
import pytest
from blockwise_helpers import BlobSegmenter, write_ngff


@pytest.fixture
def blobs():
    return BlobSegmenter(2)


@pytest.fixture(scope="session")
def nuclei_canvas(nuclei):
    """The nuclei sample mirrored into a 1024x1024 canvas (objects stay whole across the mirror lines)."""
    img = nuclei[0]
    return np.block([[img, img[:, ::-1]], [img[::-1], img[::-1, ::-1]]])


@pytest.fixture
def ngff_nuclei(tmp_path, nuclei_canvas):
    """The 1024² canvas as an NGFF 0.4 image (chunks of 128) with a pixel size of 0.5 µm."""
    return write_ngff(tmp_path / "canvas.ome.zarr", nuclei_canvas[:768, :640], "yx", "0.4",
                      scale={"y": 0.5, "x": 0.5})
