"""The evaluation jobs: predictions against ground truth, for layers (the dock) and for files (the CLI).

Label images are scored by matching objects: stardist's optimal one-to-one
assignment by IoU. Float images (restorations) are scored by PSNR as is and
scale-invariant, and SSIM (:mod:`...evaluation.restoration`). Both run where a
cancel can stop them (:func:`...runtime.offload.call`): they hold the GIL for
long on big images, and numba compiles the matching on first use.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.restoration import SCORES, quality
from napari_dlmicro.core.evaluation.segmentation import DEFAULT_IOUS, Score, error_mask, score, score_many
from napari_dlmicro.core.io.files import PARTNER_SUFFIXES, pair_by_name, tiff_files
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
    """(prediction, ground truth) file pairs: two files, or two folders matched by name (``a_denoised.tif`` too)."""
    if Path(pred).is_file() and Path(truth).is_file():
        return [(Path(pred), Path(truth))]
    return pair_by_name(tiff_files([pred]), tiff_files([truth]), PARTNER_SUFFIXES + ("_denoised",),
                        names=("prediction", "ground truth"))


@dataclass(frozen=True)
class RestorationEvaluation:
    """PSNR (as is and scale-invariant) and SSIM per file, and their means over the files."""

    per_file: dict[str, dict[str, float]]

    @property
    def mean(self) -> dict[str, float]:
        """Each score averaged over the files."""
        return {k: float(np.mean([q[k] for q in self.per_file.values()])) for k in SCORES}

    def as_dict(self) -> dict:
        """Plain values, JSON-ready."""
        return {"kind": "restoration", "mean": self.mean, "n_files": len(self.per_file), "files": self.per_file}

    def table(self) -> str:
        """A plain-text table: one row per file, then the mean."""
        width = max([len("mean")] + [len(n) for n in self.per_file])
        head = f"{'file':<{width}} " + " ".join(f"{label:>20}" for label in SCORES.values())
        rows = [head] + [f"{name:<{width}} " + " ".join(f"{q[k]:>20.3f}" for k in SCORES)
                         for name, q in self.per_file.items()]
        if len(self.per_file) > 1:
            rows.append(f"{'mean':<{width}} " + " ".join(f"{self.mean[k]:>20.3f}" for k in SCORES))
        return "\n".join(rows)


def is_restoration(image: np.ndarray) -> bool:
    """True for a float image with values between whole numbers: a restoration, not labels."""
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.floating):
        return False
    finite = image[np.isfinite(image)]
    return bool(finite.size) and not np.array_equal(finite, np.round(finite))


def evaluate_files_job(pred: str | Path, truth: str | Path, ious: Sequence[float] = DEFAULT_IOUS,
                       token: CancelToken = NEVER) -> Job:
    """Scores of the matched files; returns an :class:`Evaluation` (labels) or :class:`RestorationEvaluation`.

    Pairs where either image is a float restoration (see :func:`is_restoration`)
    get restoration scores; a set that mixes them with label pairs is refused.
    """
    pairs = match_files(pred, truth)
    clock = ProgressClock(len(pairs) + 1, "evaluating")
    preds, truths, per_file = [], [], {}
    restored: dict[str, dict[str, float]] = {}
    for k, (p, g) in enumerate(pairs):
        token.check()
        a, b = read_image(p).data, read_image(g).data
        if a.shape != b.shape:
            raise UserError(f"{p.name} has shape {a.shape} but its ground truth {g.name} has {b.shape}",
                            "compare a prediction with the ground truth of the same image, at the same size")
        if is_restoration(a) or is_restoration(b):
            if per_file:
                raise UserError(f"{p.name} is a float image but {next(iter(per_file))} holds labels",
                                "evaluate restorations and label images separately")
            restored[p.name] = offload.call(quality, b, a, token=token)
            yield clock.tick(k + 1, f"{p.name}")
            continue
        if restored:
            raise UserError(f"{p.name} holds labels but {next(iter(restored))} is a float image",
                            "evaluate restorations and label images separately")
        preds.append(a)
        truths.append(b)
        per_file[p.name] = offload.call(score, a, b, tuple(ious), token=token)
        yield clock.tick(k + 1, f"{p.name}")
    if restored:
        yield clock.tick(clock.total, "done")
        return RestorationEvaluation(restored)
    pooled = offload.call(score_many, preds, truths, tuple(ious), token=token)
    yield clock.tick(clock.total, "done")
    return Evaluation(pooled, None, per_file)


def evaluate_files(pred: str | Path, truth: str | Path, ious: Sequence[float] = DEFAULT_IOUS) -> dict:
    """Headless: :func:`evaluate_files_job` as plain dicts (JSON-ready; restorations have ``kind: restoration``)."""
    return run_to_end(evaluate_files_job(pred, truth, ious)).as_dict()
