"""The training table of clicks: CSV in and out, and surviving a re-segmentation where objects still overlap."""
import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.table import (
    carry_over,
    match_labels,
    prune,
    read_class_csv,
    write_class_csv,
)


def test_class_tables_round_trip_and_skip_unlabelled_rows(tmp_path):
    path = write_class_csv(tmp_path / "a.csv", {3: "dim", 1: "bright"})
    assert path.read_text().splitlines() == ["label,class", "1,bright", "3,dim"]
    (tmp_path / "b.csv").write_text("label,class,probability\n4,dim,0.9\n5,,0.5\n\n6.0,bright,1\n")
    assert read_class_csv(tmp_path / "b.csv") == {4: "dim", 6: "bright"}


@pytest.mark.parametrize("text, words", [
    ("id,kind\n1,a\n", "columns"),
    ("label,class\nx,a\n", "not an object id"),
    ("label,class\n-2,a\n", "not an object id"),
    ("label,class\n2,a\n2,b\n", "twice"),
])
def test_bad_class_tables_are_refused_by_row(tmp_path, text, words):
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(UserError, match=words):
        read_class_csv(tmp_path / "t.csv")


def test_clicks_follow_their_objects_into_a_new_segmentation():
    old = np.zeros((40, 40), np.int32)
    old[2:10, 2:10] = 1  # survives, renumbered and a little smaller
    old[2:10, 20:28] = 2  # disappears
    old[20:30, 2:10] = 3  # merges with 4 (same class): kept
    old[20:30, 11:18] = 4
    old[32:38, 20:26] = 5  # merges with 6 (another class): dropped
    old[32:38, 28:34] = 6
    new = np.zeros_like(old)
    new[3:10, 3:10] = 7
    new[20:30, 2:18] = 8
    new[32:38, 20:34] = 9
    assert match_labels(old, new) == {1: 7, 3: 8, 4: 8, 5: 9, 6: 9}
    table = {1: "a", 2: "b", 3: "a", 4: "a", 5: "a", 6: "b"}
    moved, notes = carry_over(table, old, new)
    assert moved == {7: "a", 8: "a"}
    assert any("gone" in n and "2" in n for n in notes) and any("merge" in n and "9" in n for n in notes)


def test_a_small_overlap_carries_no_class():
    old = np.zeros((20, 20), np.int32)
    old[0:10, 0:10] = 1
    new = np.zeros_like(old)
    new[8:18, 8:18] = 2  # covers 4 of old 1's 100 pixels
    assert match_labels(old, new) == {}
    assert match_labels(old, new, min_overlap=0.01) == {1: 2}


def test_prune_drops_erased_objects():
    assert prune({1: "a", 2: "b", 5: "a"}, [1, 5, 9]) == ({1: "a", 5: "a"}, [2])
