"""Validation of a StarDist model, and the choice of its two thresholds on held-out data.

The network runs once per validation image (candidates at a low probability
are cached); trying thresholds then only re-runs NMS, as StarDist's own
``optimize_thresholds`` does. The objective is F1 at IoU 0.5 (near-ties go to
the thresholds closest to the defaults), the score the Training dock reports.
Matching (numba, holding the GIL while it compiles) runs through
:mod:`..offload`, off napari's event loop.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_dlmicro.core.evaluation.segmentation import score_many
from napari_dlmicro.core.models.stardist.segmenter import Candidates, StarDistSegmenter, stardist_settings
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import run_to_end

MAX_CANDIDATES_PER_PIXEL = 0.05  # above this an (untrained) network's NMS would take minutes: score 0
PROB_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
NMS_GRID = (0.3, 0.4, 0.5)
DEFAULTS = (0.5, 0.4)  # StarDist's own thresholds: kept unless the validation set clearly prefers others


@dataclass(frozen=True)
class Validation:
    """Scores of a model on the validation images at its current thresholds."""

    f1: float
    ap: float
    f1_07: float
    n_pred: int
    n_true: int


def candidates_of(model: StarDistSegmenter, images: Sequence[np.ndarray], prob: float,
                  token: CancelToken = NEVER, views: int = 1) -> list[Candidates]:
    """Candidates above ``prob`` for each (normalised, spatial..., C) validation image.

    The network's weights change between validations, so its candidate cache is dropped first.
    """
    model._cache = None
    return [run_to_end(model.candidates(im, token, None, prob, views)) for im in images]


def _render_all(model: StarDistSegmenter, cands: list[Candidates], shapes, prob: float, nms: float,
                token: CancelToken = NEVER):
    out = []
    for c, shape in zip(cands, shapes):
        c = c.above(prob)
        if len(c.prob) > MAX_CANDIDATES_PER_PIXEL * int(np.prod(shape)):
            return None
        out.append(model.render(c, shape, nms, token))
    return out


def validate(model: StarDistSegmenter, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
             token: CancelToken = NEVER, probs: Sequence[float] = (0.3, 0.4, 0.5)) -> Validation:
    """F1 and AP (IoU 0.5), and F1 at IoU 0.7, at the best of a few probability thresholds.

    A network early in training is under-confident; scoring it at the best
    of ``probs`` (NMS threshold 0.4) shows progress before thresholds are tuned.
    """
    cands = candidates_of(model, images, min(probs), token)
    best = Validation(0.0, 0.0, 0.0, -1, int(sum(len(np.unique(m)) - 1 for m in masks)))
    for prob in probs:
        preds = _render_all(model, cands, [m.shape for m in masks], prob, 0.4, token)
        if preds is None:
            continue
        s05, s07 = offload.call(score_many, preds, list(masks), (0.5, 0.7), token=token)
        if (s05.f1, s05.ap) > (best.f1, best.ap):
            best = Validation(s05.f1, s05.ap, s07.f1, s05.n_pred, s05.n_true)
    return best


def optimize_thresholds(model: StarDistSegmenter, images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                        token: CancelToken = NEVER) -> tuple[float, float, float]:
    """Best (prob_thresh, nms_thresh) on the validation images; returns them and the F1 reached.

    A grid over both, then a finer search of the probability threshold around
    the best. A validation split made from a few annotated crops holds a few
    dozen objects, where one object more or less moves F1 by a few percent:
    among the pairs within one object's worth of the best F1, the one closest
    to StarDist's defaults (0.5, 0.4) wins, so noise does not move the thresholds.
    The model's thresholds are set to the winners. The network runs with the
    model's own test-time views, as it will when it segments.
    """
    shapes = [m.shape for m in masks]
    n_true = int(sum(len(np.unique(m)) - 1 for m in masks))
    cands = candidates_of(model, images, min(PROB_GRID) - 0.1, token, model.default_views)
    scores: dict[tuple[float, float], float] = {}

    def trial(prob: float, nms: float) -> None:
        token.check()
        preds = _render_all(model, cands, shapes, prob, nms, token)
        if preds is not None:
            scores[(prob, nms)] = offload.call(score_many, preds, list(masks), (0.5,), token=token)[0].f1

    for nms in NMS_GRID:
        for prob in PROB_GRID:
            trial(prob, nms)
    if not scores:
        set_thresholds(model, *DEFAULTS)
        return (*DEFAULTS, 0.0)
    p0, nms = max(scores, key=scores.get)
    for prob in np.arange(p0 - 0.08, p0 + 0.081, 0.02):
        if 0.05 <= prob <= 0.95 and (round(prob, 3), nms) not in scores:
            trial(float(round(prob, 3)), nms)
    prob, nms = choose(scores, n_true)
    set_thresholds(model, prob, nms)
    return prob, nms, max(scores[(prob, nms)], 0.0)


def choose(scores: dict[tuple[float, float], float], n_true: int) -> tuple[float, float]:
    """The (prob, nms) pair closest to the defaults among those within one object of the best F1."""
    best = max(scores.values())
    tolerance = 1.0 / max(n_true, 1)
    near = [key for key, f1 in scores.items() if f1 >= best - tolerance]
    return min(near, key=lambda k: (abs(k[0] - DEFAULTS[0]) + abs(k[1] - DEFAULTS[1]), -scores[k]))


def set_thresholds(model: StarDistSegmenter, prob: float, nms: float) -> None:
    """Make ``prob``/``nms`` the model's own defaults (saved with it); its test-time views stay."""
    model.info.settings = stardist_settings(prob, nms, model.net.config.ndim, model.default_views)
