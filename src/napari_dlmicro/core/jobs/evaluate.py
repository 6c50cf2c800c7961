"""The evaluation jobs: predicted labels against ground truth, for layers (the dock) and for files (the CLI).

Matching is stardist's (optimal one-to-one assignment by IoU) and runs where
a cancel can stop it (:func:`...runtime.offload.call`): it holds the GIL for
long on big images, and numba compiles it on first use.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.segmentation import DEFAULT_IOUS, Score, error_mask, score, score_many
from napari_dlmicro.core.io.files import pair_by_name, tiff_files
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, ProgressClock, run_to_end


@dataclass(frozen=True)
class Evaluation:
    """Scores at each IoU threshold, and (for one image) the mask of mistakes at the first."""

    scores: list[Score]
    errors: np.ndarray | None = None
    per_file: dict[str, list[Score]] | None = None

    def as_dict(self) -> dict:
        """Plain values, JSON-ready."""
        out: dict = {"pooled": [s.as_dict() for s in self.scores]}
        if self.per_file is not None:
            out["n_files"] = len(self.per_file)
            out["files"] = {k: [s.as_dict() for s in v] for k, v in self.per_file.items()}
        return out


def evaluate_job(pred: np.ndarray, truth: np.ndarray, ious: Sequence[float] = DEFAULT_IOUS,
                 token: CancelToken = NEVER) -> Job:
    """Scores of one prediction at each IoU and its error mask at the first; returns an :class:`Evaluation`."""
    clock = ProgressClock(2, "matching objects")
    yield clock.tick(0)
    scores = offload.call(score, np.asarray(pred), np.asarray(truth), tuple(ious), token=token)
    yield clock.tick(1, "marking the mistakes")
    errors = offload.call(error_mask, np.asarray(pred), np.asarray(truth), float(ious[0]), token=token)
    yield clock.tick(2, "done")
    return Evaluation(scores, errors)


def match_files(pred: str | Path, truth: str | Path) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) file pairs: two files, or two folders matched by name."""
    if Path(pred).is_file() and Path(truth).is_file():
        return [(Path(pred), Path(truth))]
    return pair_by_name(tiff_files([pred]), tiff_files([truth]), names=("prediction", "ground truth"))


def evaluate_files_job(pred: str | Path, truth: str | Path, ious: Sequence[float] = DEFAULT_IOUS,
                       token: CancelToken = NEVER) -> Job:
    """Scores pooled over the matched files, and per file; returns an :class:`Evaluation`."""
    pairs = match_files(pred, truth)
    clock = ProgressClock(len(pairs) + 1, "evaluating")
    preds, truths, per_file = [], [], {}
    for k, (p, g) in enumerate(pairs):
        token.check()
        a, b = read_image(p).data, read_image(g).data
        if a.shape != b.shape:
            raise UserError(f"{p.name} has shape {a.shape} but its ground truth {g.name} has {b.shape}",
                            "compare labels of the same image")
        preds.append(a)
        truths.append(b)
        per_file[p.name] = offload.call(score, a, b, tuple(ious), token=token)
        yield clock.tick(k + 1, f"{p.name}")
    pooled = offload.call(score_many, preds, truths, tuple(ious), token=token)
    yield clock.tick(clock.total, "done")
    return Evaluation(pooled, None, per_file)


def evaluate_files(pred: str | Path, truth: str | Path, ious: Sequence[float] = DEFAULT_IOUS) -> dict:
    """Headless: :func:`evaluate_files_job` as plain dicts (JSON-ready)."""
    return run_to_end(evaluate_files_job(pred, truth, ious)).as_dict()
