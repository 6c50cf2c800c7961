"""Seeds decide which block owns an object: two views of the same object must agree on its seed."""
from __future__ import annotations

import numpy as np
from skimage.draw import ellipse

from napari_dlmicro.core.labels.seeds import deepest_points


def test_a_symmetric_object_gets_the_same_seed_in_every_crop():
    labels = np.zeros((200, 300), np.uint16)
    labels[ellipse(100.5, 150.5, 4, 5, shape=labels.shape)] = 1  # four pixels tie for deepest
    seeds = set()
    for y0, x0, y1, x1 in ((0, 0, 200, 300), (60, 90, 200, 300), (93, 0, 141, 177), (11, 140, 120, 163)):
        _, found, _ = deepest_points(labels[y0:y1, x0:x1])
        seeds.add(tuple(found[0] + (y0, x0)))
    assert seeds == {(100, 150)}  # the first deepest pixel in raster order


def test_one_pixel_objects_are_their_own_seed():
    labels = np.zeros((5, 5), np.uint8)
    labels[1, 3] = 2
    labels[4, 0] = 7
    ids, seeds, sizes = deepest_points(labels)
    assert ids.tolist() == [2, 7] and seeds.tolist() == [[1, 3], [4, 0]] and sizes.tolist() == [1, 1]
