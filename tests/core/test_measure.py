import csv

import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.labels.measure import measure_labels, write_csv


@pytest.fixture
def two_squares():
    labels = np.zeros((40, 50), np.uint16)
    labels[5:15, 5:15] = 1
    labels[20:40, 30:50] = 2
    image = np.zeros(labels.shape, np.float32)
    image[labels == 1] = 10.0
    image[labels == 2] = 3.0
    image[25, 35] = 9.0
    return labels, image


def test_two_squares_in_micrometres(two_squares):
    labels, image = two_squares
    table = measure_labels(labels, image, scale={"Y": 0.5, "X": 0.5})
    assert list(table) == [
        "label", "area_um2", "centroid_y_um", "centroid_x_um",
        "perimeter_um", "eccentricity", "mean_intensity", "max_intensity",
    ]
    np.testing.assert_array_equal(table["label"], [1, 2])
    np.testing.assert_allclose(table["area_um2"], [25.0, 100.0])
    np.testing.assert_allclose(table["centroid_y_um"], [4.75, 14.75])
    np.testing.assert_allclose(table["centroid_x_um"], [4.75, 19.75])
    np.testing.assert_allclose(table["eccentricity"], [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(table["max_intensity"], [10.0, 9.0])
    np.testing.assert_allclose(table["mean_intensity"], [10.0, (399 * 3.0 + 9.0) / 400])
    assert table["perimeter_um"][1] == pytest.approx(2 * table["perimeter_um"][0], rel=0.1)


def test_pixel_units_without_scale(two_squares):
    table = measure_labels(two_squares[0])
    assert "area_px" in table and "centroid_x_px" in table and "perimeter_px" in table
    assert "mean_intensity" not in table
    np.testing.assert_allclose(table["area_px"], [100, 400])


def test_rectangular_pixels(two_squares):
    labels, _ = two_squares
    table = measure_labels(labels, scale=(1.0, 0.5))
    np.testing.assert_allclose(table["area_um2"], [50.0, 200.0])
    outline = table["perimeter_um"][1]
    assert 0.9 * 60 < outline < 60.0


def test_3d_volume_and_no_2d_only_columns():
    labels = np.zeros((6, 10, 10), np.int32)
    labels[1:3, 2:6, 2:6] = 4
    table = measure_labels(labels, scale={"Z": 2.0, "Y": 0.5, "X": 0.5})
    assert list(table) == ["label", "volume_um3", "centroid_z_um", "centroid_y_um", "centroid_x_um"]
    np.testing.assert_allclose(table["volume_um3"], [2 * 16 * 2.0 * 0.25])
    np.testing.assert_allclose(table["centroid_z_um"], [3.0])


@pytest.mark.parametrize("shape", [(8, 8), (3, 8, 8)])
def test_empty_labels_give_zero_rows_with_all_columns(shape):
    table = measure_labels(np.zeros(shape, np.uint16), np.ones(shape), scale=(1.0,) * len(shape))
    assert "label" in table and "mean_intensity" in table and "max_intensity" in table
    assert ("area_um2" in table) == (len(shape) == 2)
    assert ("volume_um3" in table) == (len(shape) == 3)
    assert all(len(column) == 0 for column in table.values())


def test_bad_inputs():
    with pytest.raises(UserError, match="integer"):
        measure_labels(np.zeros((4, 4), np.float32))
    with pytest.raises(UserError, match="2D or 3D"):
        measure_labels(np.zeros((2, 2, 4, 4), np.uint8))
    with pytest.raises(UserError, match="same size"):
        measure_labels(np.zeros((4, 4), np.uint8), np.zeros((2, 4, 4)))
    with pytest.raises(UserError, match="pixel sizes"):
        measure_labels(np.zeros((4, 4), np.uint8), scale=(1.0,))


def test_write_csv(tmp_path, two_squares):
    table = measure_labels(*two_squares, scale={"Y": 0.5, "X": 0.5})
    path = write_csv(tmp_path / "m" / "cells_measurements.csv", table)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["label"] for row in rows] == ["1", "2"]
    assert float(rows[1]["area_um2"]) == 100.0
    assert [p.name for p in path.parent.iterdir()] == ["cells_measurements.csv"]


def test_write_csv_empty_table_has_header(tmp_path):
    path = write_csv(tmp_path / "e.csv", measure_labels(np.zeros((4, 4), np.uint8)))
    assert path.read_text().strip() == "label,area_px,centroid_y_px,centroid_x_px,perimeter_px,eccentricity"


def test_write_csv_rejects_ragged_columns(tmp_path):
    with pytest.raises(UserError, match="different lengths"):
        write_csv(tmp_path / "r.csv", {"a": [1, 2], "b": [1]})
