"""Matching scores and the error mask."""
import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.segmentation import (
    FALSE_POSITIVE,
    MISS,
    error_mask,
    score,
    score_many,
    table,
)


def test_scores_on_the_sample(nuclei):
    _, gt = nuclei
    assert score(gt, gt)[0].f1 == 1.0
    ids = np.unique(gt[gt > 0])
    pred = gt.copy()
    pred[pred == ids[0]] = 0  # one miss
    pred[:4, :4] = ids.max() + 1  # one false positive
    s = score(pred, gt, (0.5, 0.9))
    assert [x.iou for x in s] == [0.5, 0.9]
    assert s[0].fn == 1 and s[0].fp == 1 and s[0].tp == len(ids) - 1
    assert s[0].ap == pytest.approx(s[0].tp / (s[0].tp + 2))
    pooled = score_many([pred, gt], [gt, gt], (0.5,))[0]
    assert pooled.tp == 2 * len(ids) - 1
    mask = error_mask(pred, gt)
    assert (mask[:4, :4] == FALSE_POSITIVE).all()
    assert (mask[gt == ids[0]] == MISS).all()
    assert "F1" in table(s)


def test_bad_inputs():
    with pytest.raises(UserError, match="differ"):
        score(np.zeros((4, 4), int), np.zeros((5, 4), int))
    with pytest.raises(UserError, match="not labels"):
        score(np.zeros((4, 4), float), np.zeros((4, 4), int))
    with pytest.raises(UserError, match="between 0 and 1"):
        score(np.zeros((4, 4), int), np.zeros((4, 4), int), (1.5,))
