"""Segmentation scores: matching predicted objects to ground truth at IoU thresholds.

The matching itself is stardist's (``stardist.matching.matching``: optimal
one-to-one assignment by IoU); this module adds the checks, the table over
several thresholds, a summary over many images, and the masks of false
positives and misses that the docks show as a layer.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from stardist.matching import matching, matching_dataset

from napari_dlmicro.core.errors import UserError

DEFAULT_IOUS = (0.5, 0.6, 0.7, 0.8, 0.9)
FALSE_POSITIVE, MISS = 1, 2  # values in the error mask


@dataclass(frozen=True)
class Score:
    """Matching scores at one IoU threshold."""

    iou: float
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    ap: float  # StarDist's "accuracy": TP / (TP + FP + FN)
    mean_matched_iou: float
    n_true: int
    n_pred: int

    def as_dict(self) -> dict:
        return asdict(self)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise UserError(f"prediction of shape {pred.shape} and ground truth of shape {gt.shape} differ",
                        "compare labels of the same image, pixel for pixel")
    for name, a in (("prediction", pred), ("ground truth", gt)):
        if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
            raise UserError(f"the {name} holds {a.dtype} values, not labels", "give integer label images")
        if a.size and a.min() < 0:
            raise UserError(f"the {name} has negative labels", "use 0 for background and positive ids")
    return pred.astype(np.int64, copy=False), gt.astype(np.int64, copy=False)


def _from_stats(iou: float, s) -> Score:
    tp, fp, fn = int(s.tp), int(s.fp), int(s.fn)
    return Score(
        iou=float(iou), tp=tp, fp=fp, fn=fn,
        precision=float(s.precision), recall=float(s.recall), f1=float(s.f1),
        ap=float(s.accuracy), mean_matched_iou=float(s.mean_matched_score),
        n_true=int(s.n_true), n_pred=int(s.n_pred),
    )


def score(pred: np.ndarray, gt: np.ndarray, ious: Sequence[float] = DEFAULT_IOUS) -> list[Score]:
    """Scores of one prediction against its ground truth at each IoU threshold."""
    pred, gt = _check_pair(pred, gt)
    ious = _check_ious(ious)
    stats = matching(gt, pred, thresh=list(ious))
    stats = [stats] if hasattr(stats, "tp") else list(stats)
    return [_from_stats(t, s) for t, s in zip(ious, stats)]


def score_many(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
               ious: Sequence[float] = DEFAULT_IOUS) -> list[Score]:
    """Scores pooled over many images (counts summed, as stardist's ``matching_dataset``)."""
    if len(preds) != len(gts) or not preds:
        raise UserError(f"{len(preds)} predictions but {len(gts)} ground-truth images", "give one prediction per image")
    pairs = [_check_pair(p, g) for p, g in zip(preds, gts)]
    ious = _check_ious(ious)
    stats = matching_dataset([g for _, g in pairs], [p for p, _ in pairs], thresh=list(ious), show_progress=False)
    stats = [stats] if hasattr(stats, "tp") else list(stats)
    return [_from_stats(t, s) for t, s in zip(ious, stats)]


def _check_ious(ious: Sequence[float]) -> tuple[float, ...]:
    ious = tuple(float(t) for t in ious)
    if not ious or any(not 0.0 < t < 1.0 for t in ious):
        raise UserError(f"IoU thresholds {ious} must lie between 0 and 1", "use values such as 0.5 0.7 0.9")
    return ious


def f1_at(pred: np.ndarray, gt: np.ndarray, iou: float = 0.5) -> float:
    """F1 of one prediction at one IoU threshold."""
    return score(pred, gt, (iou,))[0].f1


def error_mask(pred: np.ndarray, gt: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """A label image of mistakes: 1 = false positive (unmatched prediction), 2 = miss (unmatched truth)."""
    pred, gt = _check_pair(pred, gt)
    out = np.zeros(pred.shape, np.uint8)
    m = matching(gt, pred, thresh=iou, report_matches=True)
    matched_pred = {int(p) for (g, p), ok in zip(m.matched_pairs, _matched_flags(m, iou)) if ok}
    matched_gt = {int(g) for (g, p), ok in zip(m.matched_pairs, _matched_flags(m, iou)) if ok}
    fp_ids = np.setdiff1d(np.unique(pred[pred > 0]), list(matched_pred))
    fn_ids = np.setdiff1d(np.unique(gt[gt > 0]), list(matched_gt))
    out[np.isin(gt, fn_ids) & (gt > 0)] = MISS
    out[np.isin(pred, fp_ids) & (pred > 0)] = FALSE_POSITIVE
    return out


def _matched_flags(m, iou: float) -> list[bool]:
    return [float(s) >= iou for s in m.matched_scores]


def table(scores: Sequence[Score]) -> str:
    """A plain-text table, one row per IoU threshold."""
    head = f"{'IoU':>5} {'prec':>6} {'recall':>6} {'F1':>6} {'AP':>6} {'mIoU':>6} {'TP':>5} {'FP':>5} {'FN':>5}"
    rows = [head]
    for s in scores:
        rows.append(f"{s.iou:>5.2f} {s.precision:>6.3f} {s.recall:>6.3f} {s.f1:>6.3f} {s.ap:>6.3f} "
                    f"{s.mean_matched_iou:>6.3f} {s.tp:>5d} {s.fp:>5d} {s.fn:>5d}")
    return "\n".join(rows)
