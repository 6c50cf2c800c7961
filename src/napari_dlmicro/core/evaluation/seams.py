"""Blockwise labels against whole-image labels where it matters: the objects on block borders."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_dlmicro.core.errors import UserError


def border_ids(labels: np.ndarray, block: Sequence[int]) -> np.ndarray:
    """The ids of ``labels`` with a pixel on either side of a block border (blocks of ``block`` per axis)."""
    labels = np.asarray(labels)
    if len(block) != labels.ndim:
        raise UserError(f"a block of {len(block)} sizes for labels of {labels.ndim} dimensions",
                        "give one block size per axis")
    lines = np.zeros(labels.shape, bool)
    for axis, b in enumerate(block):
        index = [slice(None)] * labels.ndim
        for start in (b - 1, b):
            index[axis] = slice(start, None, b)
            lines[tuple(index)] = True
    ids = np.unique(labels[lines])
    return ids[ids > 0]


def identical_objects(labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The ids of ``reference`` that ``labels`` holds exactly (same pixels, under any one id)."""
    ref = np.asarray(reference).ravel().astype(np.int64)
    got = np.asarray(labels).ravel().astype(np.int64)
    if ref.shape != got.shape:
        raise UserError(f"labels of {np.size(labels)} pixels against a reference of {np.size(reference)}",
                        "compare labels of the same image")
    inside = ref > 0
    width = int(got.max(initial=0)) + 1
    pairs, overlap = np.unique(ref[inside] * width + got[inside], return_counts=True)
    ref_id, got_id = pairs // width, pairs % width
    ref_area = np.bincount(ref)
    got_area = np.bincount(got, minlength=width)
    same = (got_id > 0) & (overlap == ref_area[ref_id]) & (overlap == got_area[got_id])
    return ref_id[same]


def border_objects_that_differ(labels: np.ndarray, reference: np.ndarray, block: Sequence[int]) -> tuple[int, int]:
    """``(objects of reference on a block border, how many of them labels does not hold exactly)``."""
    on_border = border_ids(reference, block)
    differ = np.setdiff1d(on_border, identical_objects(labels, reference))
    return int(len(on_border)), int(len(differ))
