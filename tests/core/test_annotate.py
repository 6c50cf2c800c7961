"""Label editing on arrays: the Annotation dock's operations."""
import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.labels import edit as A


@pytest.fixture
def labels():
    lab = np.zeros((30, 30), np.uint16)
    lab[2:14, 2:14] = 1
    lab[6, 6] = 0  # a hole
    lab[20:23, 20:23] = 5  # small, non-consecutive id
    lab[20:28, 2:10] = 3
    return lab


def test_next_id_delete_fill_remove_relabel(labels):
    assert A.next_free_id(labels) == 6
    assert A.next_free_id(np.zeros((4, 4), np.uint8)) == 1
    out, removed = A.delete_at(labels, (24, 5))
    assert removed == 3 and not (out == 3).any() and (labels == 3).any()
    assert A.delete_at(labels, (0, 29))[1] == 0
    assert A.fill_holes(labels)[6, 6] == 1
    small, n = A.remove_small(labels, 10)
    assert n == 1 and not (small == 5).any()
    assert set(np.unique(A.relabel_sequential(labels))) == {0, 1, 2, 3}


def test_merge_and_split(labels):
    merged, kept = A.merge_at(labels, (5, 5), (24, 5))
    assert kept == 1 and set(np.unique(merged)) == {0, 1, 5}
    with pytest.raises(UserError, match="same object"):
        A.merge_at(labels, (5, 5), (10, 10))
    with pytest.raises(UserError, match="background"):
        A.merge(labels, 0, 1)
    filled = A.fill_holes(labels)
    out, new = A.split_along_line(filled, [[0, 8], [16, 8]])
    assert len(new) == 1
    assert np.count_nonzero(out == 1) + np.count_nonzero(out == new[0]) == np.count_nonzero(filled == 1)
    with pytest.raises(UserError, match="does not cut"):
        A.split_along_line(labels, [[0, 29], [29, 29]])


def test_split_3d_plane_by_plane(labels):
    vol = np.stack([labels, labels])
    out, new = A.split_along_line(vol, [[1, 0, 8], [1, 16, 8]], plane=1)
    assert (out[0] == labels).all() and new and (out[1] == new[0]).any()
    with pytest.raises(UserError, match="plane"):
        A.split_along_line(vol, [[0, 8], [16, 8]])


def test_crop_slices_and_outside_points():
    assert A.crop_slices([[2.4, -5], [10, 50]], (20, 30)) == (slice(2, 10), slice(0, 30))
    assert A.crop_slices([[2, 3], [8, 9]], (4, 20, 30)) == (slice(None), slice(2, 8), slice(3, 9))
    with pytest.raises(UserError, match="outside"):
        A.crop_slices([[50, 50], [60, 60]], (20, 30))
    with pytest.raises(UserError, match="outside"):
        A.id_at(np.zeros((5, 5), int), (7, 1))
