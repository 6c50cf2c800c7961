"""The field a training preview shows: a region around the view's centre, inside the image."""
from __future__ import annotations

from napari_dlmicro.state.denoise import field_around


def test_the_field_is_centred_and_kept_inside_the_image():
    spatial, region = field_around((3, 40, 1000, 1000), "TZYX", (1, 20, 500.4, 990))
    assert spatial == [1, 2, 3]
    assert region == (slice(4, 36), slice(404, 596), slice(808, 1000))


def test_a_small_image_is_its_own_field_and_a_missing_centre_means_the_middle():
    spatial, region = field_around((100, 50), "YX", ())
    assert spatial == [0, 1] and region == (slice(0, 100), slice(0, 50))
