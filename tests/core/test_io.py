import os

import numpy as np
import pytest
import tifffile

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.io.tiff_read import layer_scale, read_image, split_channels, tiff_axes
from napari_dlmicro.core.io.tiff_write import write_image, write_labels


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, size=(4, 2, 32, 48), dtype=np.uint16)


def test_ome_round_trip_pixel_size_to_scale(tmp_path, stack):
    path = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        path,
        stack,
        metadata={
            "axes": "ZCYX",
            "PhysicalSizeX": 325.0, "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 325.0, "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 2.0, "PhysicalSizeZUnit": "µm",
            "Channel": {"Name": ["DAPI", "GFP"]},
        },
    )
    image = read_image(path)
    assert image.name == "cells"
    assert image.axes == "ZCYX"
    assert image.unit == "µm"
    assert image.scale == pytest.approx({"Z": 2.0, "Y": 0.325, "X": 0.325})
    assert image.channel_names == ["DAPI", "GFP"]
    np.testing.assert_array_equal(image.data, stack)
    assert layer_scale(image.axes, image.scale) == pytest.approx((2.0, 0.325, 0.325))


def test_imagej_hyperstack_tzcyx(tmp_path):
    data = np.arange(2 * 3 * 2 * 8 * 9, dtype=np.uint16).reshape(2, 3, 2, 8, 9)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(
        path, data, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
        metadata={"axes": "TZCYX", "unit": "micron", "spacing": 1.5},
    )
    image = read_image(path)
    assert image.axes == "TZCYX"
    assert image.data.shape == data.shape
    assert image.scale == pytest.approx({"Z": 1.5, "Y": 0.2, "X": 0.2})
    assert image.unit == "µm"
    assert layer_scale(image.axes, image.scale) == pytest.approx((1.0, 1.5, 0.2, 0.2))
    channels = split_channels(image.data, image.axes)
    assert [name for name, _ in channels] == ["ch0", "ch1"]
    np.testing.assert_array_equal(channels[1][1], data[:, :, 1])


def test_rgb_keeps_samples_axis(tmp_path):
    rgb = np.zeros((16, 20, 3), np.uint8)
    tifffile.imwrite(tmp_path / "he.tif", rgb, photometric="rgb")
    image = read_image(tmp_path / "he.tif")
    assert image.axes == "YXS" and image.rgb
    assert layer_scale(image.axes, image.scale) == (1.0, 1.0)


def test_resolution_in_centimetres_is_read_as_micrometres(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8), resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    image = read_image(tmp_path / "a.tif")
    assert image.scale == pytest.approx({"Y": 0.5, "X": 0.5})
    assert image.unit == "µm"


def test_inch_resolution_is_not_a_pixel_size(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8), resolution=(72, 72), resolutionunit="INCH")
    image = read_image(tmp_path / "a.tif")
    assert image.scale == {} and image.unit is None


@pytest.mark.parametrize(
    "axes, shape, expected",
    [
        ("QYX", (5, 8, 8), "ZYX"),
        ("IYX", (5, 8, 8), "ZYX"),
        ("QQYX", (2, 5, 8, 8), "TZYX"),
        ("ZQYX", (2, 5, 8, 8), "ZTYX"),
        ("SYX", (2, 8, 8), "CYX"),
        ("YXS", (8, 8, 3), "YXS"),
        ("YXS", (8, 8, 2), "YXC"),
        ("EYX", (4, 8, 8), "CYX"),
    ],
)
def test_normalize_axes(axes, shape, expected):
    assert tiff_axes(axes, shape) == expected


def test_normalize_axes_without_plane():
    with pytest.raises(UserError, match="no Y and X"):
        tiff_axes("QX", (3, 4))


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="there is no file at"):
        read_image(tmp_path / "nope.tif")


def test_empty_file(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        read_image(tmp_path / "empty.tif")


def test_not_a_tiff(tmp_path):
    (tmp_path / "fake.tif").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(UserError, match="fake.tif is not a TIFF file"):
        read_image(tmp_path / "fake.tif")


@pytest.mark.parametrize("imagej", [True, False])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_tiff(tmp_path, stack, imagej, keep):
    whole = tmp_path / "whole.tif"
    if imagej:
        tifffile.imwrite(whole, stack, imagej=True, metadata={"axes": "ZCYX"})
    else:
        tifffile.imwrite(whole, stack, metadata={"axes": "ZCYX"})
    content = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(content[: int(len(content) * keep)])
    with pytest.raises(UserError) as err:
        read_image(cut)
    message = str(err.value)
    assert message.startswith("cut.tif is truncated or corrupt")
    assert "copy or export the file again" in message.lower()


def test_write_labels_uint16_imagej_with_scale(tmp_path):
    labels = np.zeros((3, 10, 12), np.int64)
    labels[1, 2:5, 3:7] = 7
    path = write_labels(tmp_path / "out" / "x_labels.tif", labels, scale=(2.0, 0.5, 0.25))
    assert path.exists()
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.series[0].dtype == np.uint16
    image = read_image(path)
    assert image.axes == "ZYX"
    assert image.scale == pytest.approx({"Z": 2.0, "Y": 0.5, "X": 0.25})
    np.testing.assert_array_equal(image.data, labels)


def test_write_labels_uint32_when_needed(tmp_path):
    labels = np.zeros((6, 6), np.int64)
    labels[0, 0] = 70000
    path = write_labels(tmp_path / "big.tif", labels, scale={"X": 0.3, "Y": 0.3})
    image = read_image(path)
    assert image.data.dtype == np.uint32
    assert image.data[0, 0] == 70000
    assert image.scale == pytest.approx({"Y": 0.3, "X": 0.3})


def test_write_labels_rejects_bad_input(tmp_path):
    with pytest.raises(UserError, match="whole numbers"):
        write_labels(tmp_path / "a.tif", np.full((4, 4), 0.5))
    with pytest.raises(UserError, match="negative"):
        write_labels(tmp_path / "a.tif", -np.ones((4, 4), int))
    with pytest.raises(UserError, match="do not describe"):
        write_labels(tmp_path / "a.tif", np.ones((4, 4), int), axes="ZYX")
    assert not (tmp_path / "a.tif").exists()


def test_write_image_float32_ome_names(tmp_path):
    image = np.random.default_rng(1).random((2, 8, 8))
    path = write_image(tmp_path / "d.ome.tif", image, scale=(0.1, 0.1), axes="CYX", channel_names=["a", "b"])
    back = read_image(path)
    assert back.data.dtype == np.float32
    assert back.axes == "CYX"
    assert back.channel_names == ["a", "b"]
    assert back.scale == pytest.approx({"Y": 0.1, "X": 0.1})
    np.testing.assert_allclose(back.data, image.astype(np.float32))


def test_nanometre_scale_is_written_in_micrometres(tmp_path):
    path = write_image(tmp_path / "n.tif", np.zeros((4, 4)), scale=(100, 100), unit="nm")
    assert read_image(path).scale == pytest.approx({"Y": 0.1, "X": 0.1})


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "keep.tif"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.tif"]


def test_unwritable_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(UserError, match="could not write"):
        write_labels(blocker / "x.tif", np.ones((4, 4), int))


def test_a_zarr_store_given_to_a_command_that_reads_tiffs_says_so(tmp_path):
    from napari_dlmicro.core.io.files import tiff_files

    store = tmp_path / "plate.ome.zarr"
    store.mkdir()
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    with pytest.raises(UserError, match="'plate.ome.zarr' is a Zarr store, and this command reads TIFF files"):
        tiff_files([store])
