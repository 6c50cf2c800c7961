"""The napari TIFF reader opens a TIFF too big to read whole lazily, tile by tile, with views napari can zoom."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_dlmicro import _reader
from napari_dlmicro.core.io import lazy


@pytest.fixture
def small_limit(monkeypatch):
    monkeypatch.setattr(lazy, "LAZY_TIFF_BYTES", 1 << 20)  # 1 MiB: the test files count as too big to read whole


def test_a_flat_big_tiff_opens_as_strided_levels_of_its_tiles(tmp_path, small_limit):
    data = np.random.default_rng(0).integers(0, 4000, (3000, 2500)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "slide.tif", data, tile=(256, 256), resolution=(2.0, 2.0),
                     resolutionunit="CENTIMETER")
    [(levels, kwargs, kind)] = _reader.read_tiffs(str(tmp_path / "slide.tif"))
    assert kind == "image" and kwargs["multiscale"] and kwargs["name"] == "slide"
    assert all(isinstance(lv, da.Array) for lv in levels)  # nothing read yet
    assert [lv.shape for lv in levels] == [(3000, 2500), (1500, 1250)]
    np.testing.assert_array_equal(np.asarray(levels[1][100:120, 200:230]), data[::2, ::2][100:120, 200:230])
    assert kwargs["metadata"]["source"].endswith("slide.tif") and kwargs["metadata"]["source_axes"] == "YX"
    assert kwargs["scale"] == pytest.approx((5000.0, 5000.0))  # 2 px/cm: 5,000 µm a pixel


def test_a_big_rgb_tiff_stays_one_colour_layer_and_a_big_labels_tiff_opens_as_labels(tmp_path, small_limit):
    rgb = np.random.default_rng(1).integers(0, 255, (1200, 1000, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "he.tif", rgb, tile=(256, 256), photometric="rgb")
    [(levels, kwargs, kind)] = _reader.read_tiffs(str(tmp_path / "he.tif"))
    assert kind == "image" and kwargs["rgb"] and np.asarray(levels).shape == (1200, 1000, 3)
    labels = np.zeros((1200, 1000), np.uint32)
    labels[10:50, 10:50] = 7
    tifffile.imwrite(tmp_path / "cells_labels.tif", labels, tile=(256, 256))
    [(data, kwargs, kind)] = _reader.read_tiffs(str(tmp_path / "cells_labels.tif"))
    assert kind == "labels" and int(np.asarray(data)[20, 20]) == 7


def test_a_tiff_that_fits_is_read_whole_as_before(tmp_path):
    tifffile.imwrite(tmp_path / "small.tif", np.ones((64, 64), np.uint16))
    [(data, _, kind)] = _reader.read_tiffs(str(tmp_path / "small.tif"))
    assert kind == "image" and isinstance(data, np.ndarray)
