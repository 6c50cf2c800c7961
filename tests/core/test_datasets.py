"""Training-set folders: atomic pairs with provenance, counts, foreign layouts, bad input."""
import json

import numpy as np
import pytest
import tifffile

from napari_dlmicro.core.data.training_sets import (
    Pair,
    add_pair,
    clean_mask,
    detect_layout,
    load_pairs,
    spatial_ndim,
    split_validation,
    summarize,
)
from napari_dlmicro.core.errors import UserError


def _pair(n=3, size=64):
    img = np.random.default_rng(0).random((size, size)).astype(np.float32)
    lab = np.zeros((size, size), np.uint16)
    for k in range(n):
        lab[4 + 12 * k: 12 + 12 * k, 4:12] = k + 1
    return img, lab


def test_add_never_overwrites_and_lists(tmp_path):
    img, lab = _pair()
    a = add_pair(tmp_path / "set", img, lab, "cells", source="/data/cells.tif", crop=(slice(0, 64), slice(0, 64)))
    b = add_pair(tmp_path / "set", img, lab, "cells")
    assert (a, b) == ("cells", "cells_2")
    meta = json.loads((tmp_path / "set" / "meta" / "cells.json").read_text())
    assert meta["source"] == "/data/cells.tif" and meta["crop"] == [[0, 64], [0, 64]] and meta["n_objects"] == 3
    s = summarize(tmp_path / "set")
    assert (s.n_images, s.n_objects, s.layout) == (2, 6, "ours")
    assert not [p for p in (tmp_path / "set").rglob("*") if p.name.startswith(".")]  # no leftovers
    pairs = load_pairs(tmp_path / "set")
    assert [p.name for p in pairs] == ["cells", "cells_2"] and pairs[0].meta["source"]


def test_foreign_layouts(tmp_path):
    img, lab = _pair()
    (tmp_path / "sd" / "images").mkdir(parents=True)
    (tmp_path / "sd" / "masks").mkdir()
    tifffile.imwrite(tmp_path / "sd" / "images" / "a.tif", img)
    tifffile.imwrite(tmp_path / "sd" / "masks" / "a.tif", lab)
    assert detect_layout(tmp_path / "sd") == "stardist" and len(load_pairs(tmp_path / "sd")) == 1
    (tmp_path / "cp").mkdir()
    tifffile.imwrite(tmp_path / "cp" / "b.tif", img)
    tifffile.imwrite(tmp_path / "cp" / "b_masks.tif", lab)
    assert detect_layout(tmp_path / "cp") == "cellpose"
    assert summarize(tmp_path / "cp").n_objects == 3
    with pytest.raises(UserError, match="same name"):
        load_pairs(tmp_path / "sd" / "images", tmp_path / "cp")  # a.tif has no mask there


def test_bad_pairs_are_refused_and_nothing_written(tmp_path):
    img, lab = _pair()
    with pytest.raises(UserError, match="differ"):
        add_pair(tmp_path / "set", img[:50], lab)
    with pytest.raises(UserError, match="empty"):
        add_pair(tmp_path / "set", img, np.zeros_like(lab))
    assert not (tmp_path / "set").exists() or summarize(tmp_path / "set").n_images == 0


def test_mask_fixes_mixed_dims_and_splits():
    _, lab = _pair(n=12, size=160)
    lab = lab * 3  # non-consecutive
    lab[8, 8] = 0  # a hole
    fixed, notes = clean_mask(lab)
    assert fixed.max() == 12 and fixed[8, 8] == 1 and len(notes) == 2
    with pytest.raises(UserError, match="mixes 2D"):
        spatial_ndim([Pair("a", lab, lab), Pair("b", lab[None], lab[None])])
    train, val = split_validation([Pair("a", lab, fixed)], 0.2)
    assert train[0].mask.shape[0] + val[0].mask.shape[0] == 160
    with pytest.raises(UserError, match="too few"):
        split_validation([Pair("a", lab[:20], fixed[:20])], 0.2)
