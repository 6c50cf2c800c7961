"""Shared fixtures of the core tests: small synthetic objects of two kinds, no downloads of ImageNet weights,
and the images of the blockwise tests."""
from __future__ import annotations

import numpy as np
import pytest
from blockwise_helpers import BlobSegmenter, write_ngff


@pytest.fixture(autouse=True)
def _no_imagenet_download(monkeypatch):
    """A deep classifier trained in a test never downloads: its ImageNet source says it is offline."""
    from napari_dlmicro.core.models.classifier import network

    monkeypatch.setattr(network, "imagenet_weights", lambda: (None, "ImageNet weights could not be had (offline "
                                                                    "in tests): training from scratch"))


def two_kinds(seed: int = 0, size: int = 128, n: int = 24, channels: int = 1):
    """Discs on a noisy background: small bright ones (class 'bright') and larger dim ones ('dim').

    Returns ``(image, labels, truth)`` with ``truth`` mapping every label id to its class.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size))
    labels = np.zeros((size, size), np.int32)
    image = rng.normal(0.1, 0.03, (size, size))
    truth = {}
    label = 0
    for _ in range(n * 20):
        if label == n:
            break
        bright = label % 2 == 0
        r = rng.uniform(3, 4) if bright else rng.uniform(5.5, 7)
        cy, cx = rng.uniform(r + 1, size - r - 1, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 2) ** 2].any():
            continue  # two pixels apart at least
        label += 1
        labels[disc] = label
        image[disc] += 1.0 if bright else 0.4
        truth[label] = "bright" if bright else "dim"
    if channels > 1:
        image = np.stack([image * (c + 1) for c in range(channels)], axis=-1)
    return image.astype(np.float32), labels, truth


@pytest.fixture
def objects_two_kinds():
    """One image of two kinds of disc, its labels, and the class of every object."""
    return two_kinds()


@pytest.fixture(scope="session")
def make_two_kinds():
    """:func:`two_kinds` itself, for tests that need several images or channels."""
    return two_kinds


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
