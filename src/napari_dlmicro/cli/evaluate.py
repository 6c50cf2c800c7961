"""``napari-dlmicro evaluate PRED GT [--iou 0.5 0.7 0.9] [--json]``.

PRED and GT are label files, or folders whose files are matched by name
(``a.tif`` with ``a.tif``, ``a_labels.tif``, ``a_masks.tif`` or ``a_denoised.tif``).
For labels it prints the table of precision, recall, F1, AP and mean matched
IoU per IoU threshold, pooled over all pairs; for float images (restorations)
PSNR as is and scale-invariant, and SSIM, per file and their mean. ``--json``
prints JSON instead, per file too.
"""
from __future__ import annotations

import argparse
import json

from napari_dlmicro.cli.common import run_with_progress
from napari_dlmicro.core.evaluation.segmentation import DEFAULT_IOUS, table
from napari_dlmicro.core.jobs.evaluate import RestorationEvaluation, evaluate_files_job


def add_parser(subparsers) -> None:
    """Add ``evaluate`` to the ``napari-dlmicro`` command."""
    p = subparsers.add_parser("evaluate", help="score predicted labels or restored images against ground truth "
                              "(files or folders)")
    p.add_argument("pred", help="predicted label (or restored float image) file or folder")
    p.add_argument("gt", help="ground-truth file or folder")
    p.add_argument("--iou", type=float, nargs="+", default=list(DEFAULT_IOUS), help="IoU thresholds")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the scores."""
    result = run_with_progress(lambda token: evaluate_files_job(args.pred, args.gt, args.iou, token), "evaluating")
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    elif isinstance(result, RestorationEvaluation):
        print(f"{len(result.per_file)} restored file(s) matched")
        print(result.table())
    else:
        print(f"{len(result.per_file or {})} file(s) matched")
        print(table(result.scores))
    return 0
