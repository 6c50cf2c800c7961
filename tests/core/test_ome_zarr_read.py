"""OME-Zarr in: NGFF 0.4 and 0.5 images with pyramid, axes, pixel sizes, channels; plates; bad stores refused."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr
from blockwise_helpers import write_ngff
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_multiscales_metadata, write_plate_metadata, write_well_metadata

from napari_dlmicro._zarr_reader import get_reader
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import open_tiff_lazily
from napari_dlmicro.core.io.ome_zarr import open_image, open_images


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_an_ngff_image_opens_lazily_with_its_pyramid_axes_and_pixel_sizes(tmp_path, version):
    data = np.random.default_rng(0).integers(0, 200, (2, 300, 400)).astype(np.uint16)
    write_ngff(tmp_path / "a.ome.zarr", data, "cyx", version, chunks=(1, 128, 128), scale={"c": 1, "y": 0.5, "x": 0.25})
    image = open_image(tmp_path / "a.ome.zarr")
    assert image.axes == "CYX" and image.shape == (2, 300, 400) and image.name == "a"
    assert len(image.levels) > 1 and image.levels[1].shape[1] < 300
    assert image.scale == {"Y": 0.5, "X": 0.25}
    assert image.chunks == (1, 128, 128)
    assert image.ngff_version == version
    np.testing.assert_array_equal(image.source.read((1, slice(10, 20), slice(30, 40))), data[1, 10:20, 30:40])


def test_a_plate_opens_as_one_image_per_field(tmp_path):
    root = zarr.open_group(str(tmp_path / "p.ome.zarr"), mode="w", zarr_format=2)
    write_plate_metadata(root, ["A", "B"], ["1"], ["A/1", "B/1"], fmt=FormatV04())
    rng = np.random.default_rng(1)
    for well in ("A/1", "B/1"):
        group = root.require_group(well)
        write_well_metadata(group, [{"path": "0"}, {"path": "1"}], fmt=FormatV04())
        for f in ("0", "1"):
            write_ngff(tmp_path / "p.ome.zarr" / well / f, rng.random((64, 64)).astype(np.float32), "yx")
    fields = open_images(tmp_path / "p.ome.zarr")
    assert [f.where for f in fields] == ["A/1/0", "A/1/1", "B/1/0", "B/1/1"]
    assert fields[0].name == "p_A_1_0"


def test_a_folder_that_is_not_ome_zarr_is_refused(tmp_path):
    (tmp_path / "x.ome.zarr").mkdir()
    with pytest.raises(UserError, match="not a Zarr store"):
        open_images(tmp_path / "x.ome.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=2)
    with pytest.raises(UserError, match="no 'multiscales'"):
        open_image(tmp_path / "plain.zarr")


def test_metadata_that_lie_about_the_shape_are_refused(tmp_path):
    path = write_ngff(tmp_path / "a.ome.zarr", np.zeros((64, 64), np.uint8), "yx")
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["multiscales"][0]["axes"] = [{"name": n, "type": "space"} for n in "zyx"]
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(UserError, match="3 axes"):
        open_image(path)


def test_a_big_tiff_opens_lazily_through_tifffile(tmp_path):
    data = np.arange(256 * 300, dtype=np.uint16).reshape(256, 300)
    tifffile.imwrite(tmp_path / "big.tif", data, tile=(64, 64))
    image = open_tiff_lazily(tmp_path / "big.tif")
    assert image.axes == "YX" and image.shape == (256, 300)
    np.testing.assert_array_equal(image.source.read((slice(100, 130), slice(200, 260))), data[100:130, 200:260])


def test_the_napari_reader_opens_ome_zarr_as_multiscale_layers(tmp_path):
    data = np.random.default_rng(0).random((2, 600, 600)).astype(np.float32)
    write_ngff(tmp_path / "a.ome.zarr", data, "cyx", "0.5", chunks=(1, 256, 256), scale={"c": 1, "y": 2, "x": 2})
    reader = get_reader(str(tmp_path / "a.ome.zarr"))
    assert reader is not None and get_reader(str(tmp_path / "nothing.tif")) is None
    [(levels, kwargs, kind)] = reader(str(tmp_path / "a.ome.zarr"))
    assert kind == "image" and kwargs["multiscale"] and kwargs["channel_axis"] == 0
    assert kwargs["scale"] == (2.0, 2.0) and levels[0].shape == (2, 600, 600)


def test_a_sharded_ngff_05_image_reads_everywhere_and_names_a_missing_shard(tmp_path):
    data = np.arange(300 * 300, dtype=np.uint32).reshape(300, 300)
    root = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="w", zarr_format=3)
    root.create_array("0", shape=data.shape, chunks=(64, 64), shards=(128, 128), dtype=data.dtype)[:] = data
    write_multiscales_metadata(root, [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}],
                               fmt=FormatV05(), axes=["y", "x"])
    image = open_image(tmp_path / "s.ome.zarr")
    np.testing.assert_array_equal(image.source.read((slice(200, 300), slice(150, 300))), data[200:, 150:])
    (tmp_path / "s.ome.zarr" / "0" / "c" / "2" / "1").unlink()
    with pytest.raises(UserError, match="chunk c/2/1 of s.ome.zarr/0 is missing"):
        image.source.read((slice(200, 300), slice(150, 300)))


def test_label_images_small_enough_to_hold_open_in_memory_where_napari_can_paint(tmp_path, monkeypatch):
    from ome_zarr.writer import write_labels

    from napari_dlmicro import _lazy_layer_data

    image = np.zeros((300, 400), np.uint16)
    labels = np.zeros((300, 400), np.uint32)
    labels[10:50, 20:60] = 3
    write_ngff(tmp_path / "a.ome.zarr", image, "yx", "0.4")
    write_labels(labels, zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="r+"), name="nuclei", axes="yx",
                 fmt=FormatV04())
    [_, (data, kwargs, kind)] = get_reader(str(tmp_path / "a.ome.zarr"))(str(tmp_path / "a.ome.zarr"))
    assert kind == "labels" and not kwargs["multiscale"] and kwargs["name"] == "a [nuclei]"
    assert isinstance(data, np.ndarray) and data.flags.writeable  # an in-memory copy: painting it works
    np.testing.assert_array_equal(data, labels)
    monkeypatch.setattr(_lazy_layer_data, "PAINTABLE_PIXELS", 299 * 400)  # one row too many to hold
    [_, (levels, kwargs, kind)] = get_reader(str(tmp_path / "a.ome.zarr"))(str(tmp_path / "a.ome.zarr"))
    assert kind == "labels" and kwargs["multiscale"] and not isinstance(levels[0], np.ndarray)
