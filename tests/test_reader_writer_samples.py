import numpy as np
import pytest
import tifffile
from napari.layers import Layer

from napari_dlmicro._reader import get_reader
from napari_dlmicro._sample_data import he_2d, nuclei_2d, nuclei_3d
from napari_dlmicro._writer import write_labels_layer
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.tiff_read import read_image


def _layers(layer_data):
    return [Layer.create(data, meta, kind) for data, meta, kind in layer_data]


@pytest.mark.parametrize("name", ["a.png", "a.czi", "folder", "a.tif.zip"])
def test_get_reader_declines_non_tiff(name):
    assert get_reader(name) is None


def test_get_reader_declines_mixed_lists():
    assert get_reader(["a.tif", "b.png"]) is None
    assert get_reader([]) is None


@pytest.mark.parametrize("name", ["a.tif", "a.TIFF", "a.ome.tif", "a.ome.tiff"])
def test_get_reader_accepts_tiff(name):
    assert callable(get_reader(name))
    assert callable(get_reader([name, name]))


def test_channels_become_layers_with_scale(tmp_path):
    data = np.zeros((3, 2, 16, 16), np.uint16)
    data[:, 1] = 5
    path = str(tmp_path / "cells.ome.tif")
    tifffile.imwrite(path, data, metadata={
        "axes": "ZCYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.0,
        "Channel": {"Name": ["DAPI", "GFP"]},
    })
    layer_data = get_reader(path)(path)
    assert [meta["name"] for _, meta, _ in layer_data] == ["cells [DAPI]", "cells [GFP]"]
    assert all(kind == "image" for *_, kind in layer_data)
    assert layer_data[1][0].shape == (3, 16, 16)
    assert layer_data[1][0].max() == 5
    dapi, gfp = _layers(layer_data)
    np.testing.assert_allclose(gfp.scale, (1.0, 0.2, 0.2))
    assert gfp.metadata["axes"] == "ZYX"
    assert gfp.blending == "additive"
    assert str(gfp.units[-1]) == "micrometer"


def test_rgb_stays_one_layer(tmp_path):
    path = str(tmp_path / "he.tif")
    tifffile.imwrite(path, np.zeros((10, 12, 3), np.uint8), photometric="rgb")
    layer_data = get_reader(path)(path)
    assert len(layer_data) == 1
    (layer,) = _layers(layer_data)
    assert layer.rgb and layer.data.shape == (10, 12, 3)


def test_grayscale_without_channels_is_one_layer(tmp_path):
    path = str(tmp_path / "plain.tif")
    tifffile.imwrite(path, np.zeros((5, 10, 12), np.uint16))
    (layer,) = _layers(get_reader(path)(path))
    assert layer.name == "plain" and layer.ndim == 3


@pytest.mark.parametrize("name", ["cells_labels.tif", "cells_masks.tiff"])
def test_labels_file_opens_as_labels(tmp_path, name):
    path = str(tmp_path / name)
    tifffile.imwrite(path, np.arange(64, dtype=np.uint16).reshape(8, 8))
    (data, meta, kind), = get_reader(path)(path)
    assert kind == "labels"
    assert meta["name"] == name.split(".")[0]


def test_float_masks_file_is_an_image(tmp_path):
    path = str(tmp_path / "x_masks.tif")
    tifffile.imwrite(path, np.zeros((8, 8), np.float32))
    assert get_reader(path)(path)[0][2] == "image"


def test_reader_errors_are_user_errors(tmp_path):
    path = str(tmp_path / "broken.tif")
    (tmp_path / "broken.tif").write_bytes(b"II*\0" + b"\xff" * 4)
    with pytest.raises(UserError, match="broken.tif"):
        get_reader(path)(path)


def test_writer_round_trip_through_reader(tmp_path):
    labels = np.zeros((4, 20, 20), np.uint32)
    labels[1:3, 5:10, 5:10] = 3
    meta = {"scale": (2.0, 0.5, 0.5), "units": ("micrometer",) * 3, "metadata": {"axes": "ZYX"}, "name": "x"}
    written = write_labels_layer(str(tmp_path / "seg_labels"), labels, meta)
    assert written == [str(tmp_path / "seg_labels.tif")]
    (data, meta_back, kind), = get_reader(written[0])(written[0])
    assert kind == "labels"
    assert data.dtype == np.uint16
    np.testing.assert_array_equal(data, labels)
    assert meta_back["scale"] == pytest.approx((2.0, 0.5, 0.5))


def test_writer_converts_layer_units(tmp_path):
    labels = np.ones((6, 6), np.uint8)
    meta = {"scale": (200.0, 200.0), "units": ("nanometer", "nanometer")}
    (path,) = write_labels_layer(str(tmp_path / "n.tif"), labels, meta)
    assert read_image(path).scale == pytest.approx({"Y": 0.2, "X": 0.2})


def test_writer_without_calibration(tmp_path):
    meta = {"scale": (1.0, 1.0), "units": ("pixel", "pixel")}
    (path,) = write_labels_layer(str(tmp_path / "p.tif"), np.ones((6, 6), np.uint8), meta)
    assert read_image(path).scale == {}


def test_sample_nuclei_2d():
    (image, image_meta, image_kind), (labels, labels_meta, labels_kind) = nuclei_2d()
    assert (image_kind, labels_kind) == ("image", "labels")
    assert image_meta["name"] == "nuclei" and labels_meta["name"] == "nuclei ground truth"
    assert image.ndim == 2 and image.shape == labels.shape
    assert np.issubdtype(labels.dtype, np.integer) and labels.max() > 10


def test_sample_nuclei_3d():
    (image, _, _), (labels, _, kind) = nuclei_3d()
    assert kind == "labels"
    assert image.ndim == 3 and image.shape == labels.shape


def test_sample_he():
    (image, meta, kind), = he_2d()
    assert kind == "image" and meta["rgb"]
    assert image.ndim == 3 and image.shape[-1] == 3
    assert _layers(he_2d())[0].rgb
