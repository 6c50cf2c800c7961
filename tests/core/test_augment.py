"""Training patches: crops, turns and zooms keep the image and its labels together."""
import numpy as np
import pytest

from napari_dlmicro.core.data.augment import _turned_crop, augment_pair, parse_augment, random_crop
from napari_dlmicro.core.errors import UserError


def disks(shape=(96, 80), n=12, seed=0):
    """Labels of random disks, and an image that is bright exactly on them."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint16)
    for i in range(1, n + 1):
        cy, cx, r = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8), rng.integers(4, 8)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = i
    return (labels > 0).astype(np.float32)[..., None], labels


def test_no_turn_no_zoom_is_the_plain_crop():
    image, labels = disks()
    img, lab = _turned_crop(image, labels, [10, 7], (32, 48), 0.0, 1.0)
    np.testing.assert_array_equal(lab, labels[10:42, 7:55])
    np.testing.assert_allclose(img, image[10:42, 7:55], atol=1e-5)


@pytest.mark.parametrize("kinds", [{"rotate"}, {"scale"}, {"rotate", "scale", "flips", "rot90", "elastic"}])
def test_turned_and_zoomed_patches_keep_image_and_labels_aligned(kinds):
    image, labels = disks()
    rng = np.random.default_rng(1)
    kinds = parse_augment(tuple(kinds))
    for _ in range(10):
        img, lab = augment_pair(rng, *random_crop(rng, image, labels, (48, 48), kinds=kinds), kinds)
        assert img.shape == (48, 48, 1) and img.dtype == np.float32
        assert lab.shape == (48, 48) and lab.dtype == labels.dtype
        assert set(np.unique(lab)) <= set(np.unique(labels))  # nearest neighbour: no blended ids
        agree = np.mean((img[..., 0] > 0.5) == (lab > 0))
        assert agree > 0.97


def test_turned_crop_of_a_3d_stack_turns_each_plane_alike():
    image, labels = disks((64, 64))
    stack = np.stack([image, image, image])
    lab3 = np.stack([labels, labels, labels])
    img, lab = _turned_crop(stack, lab3, [0, 8, 8], (2, 40, 40), 0.7, 1.1)
    assert img.shape == (2, 40, 40, 1) and lab.shape == (2, 40, 40)
    np.testing.assert_array_equal(lab[0], lab[1])
    assert lab.any()


def test_unknown_augmentation_is_named():
    with pytest.raises(UserError, match="shear"):
        parse_augment("flips,shear")


def test_intensity_gain_spans_half_to_double():
    """'intensity' scales the normalised image by 0.5-2x (plus a small shift), labels untouched."""
    from napari_dlmicro.core.data.augment import INTENSITY_GAIN, augment_pair

    rng = np.random.default_rng(0)
    image = np.ones((16, 16, 1), np.float32)
    labels = np.arange(256).reshape(16, 16)
    levels = []
    for _ in range(400):
        out, lab = augment_pair(rng, image, labels, frozenset({"intensity"}))
        assert np.array_equal(lab, labels)
        assert np.ptp(out) == 0  # one gain and one shift for the whole patch
        levels.append(float(out[0, 0, 0]))
    assert min(levels) >= INTENSITY_GAIN[0] - 0.1 and max(levels) <= INTENSITY_GAIN[1] + 0.1
    assert min(levels) < 0.7 and max(levels) > 1.5  # wider than a 'little' jitter
