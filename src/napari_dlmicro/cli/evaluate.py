"""``napari-dlmicro evaluate PRED GT [--iou 0.5 0.7 0.9] [--json]``.

PRED and GT are label files, or folders whose files are matched by name
(``a.tif`` with ``a.tif``, ``a_labels.tif`` or ``a_masks.tif``). Prints the
table of precision, recall, F1, AP and mean matched IoU per IoU threshold,
pooled over all pairs (or JSON with ``--json``, per file too).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..core.errors import UserError
from .common import expand_inputs, stem

SUFFIXES = ("_labels", "_masks", "_mask", "_gt", "_pred")


def _key(path: Path) -> str:
    s = stem(path)
    for suffix in SUFFIXES:
        if s.endswith(suffix):
            return s[: -len(suffix)]
    return s


def match_files(pred: str, gt: str) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) file pairs: two files, or two folders matched by name."""
    preds, gts = expand_inputs([pred]), expand_inputs([gt])
    if Path(pred).is_file() and Path(gt).is_file():
        return [(preds[0], gts[0])]
    by_key = {_key(g): g for g in gts}
    pairs = [(p, by_key[_key(p)]) for p in preds if _key(p) in by_key]
    if not pairs:
        raise UserError(f"no prediction in '{pred}' has a ground-truth file of the same name in '{gt}'",
                        "name them alike (a.tif, a_labels.tif or a_masks.tif)")
    return pairs


def evaluate_files(pred: str, gt: str, ious=(0.5, 0.6, 0.7, 0.8, 0.9)) -> dict:
    """Scores pooled over the matched files, and per file; plain dicts (JSON-ready)."""
    from ..core.io import read_image
    from ..core.metrics import score, score_many

    pairs = match_files(pred, gt)
    preds, gts, per_file = [], [], {}
    for p, g in pairs:
        a, b = read_image(p).data, read_image(g).data
        if a.shape != b.shape:
            raise UserError(f"{p.name} has shape {a.shape} but its ground truth {g.name} has {b.shape}",
                            "compare labels of the same image")
        preds.append(a)
        gts.append(b)
        per_file[p.name] = [s.as_dict() for s in score(a, b, ious)]
    pooled = score_many(preds, gts, ious)
    return {"n_files": len(pairs), "pooled": [s.as_dict() for s in pooled], "files": per_file}


def add_parser(subparsers) -> None:
    """Add ``evaluate`` to the ``napari-dlmicro`` command."""
    p = subparsers.add_parser("evaluate", help="score predicted labels against ground truth (files or folders)")
    p.add_argument("pred", help="predicted label file or folder")
    p.add_argument("gt", help="ground-truth label file or folder")
    p.add_argument("--iou", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8, 0.9], help="IoU thresholds")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(run=run)


def run(args) -> int:
    """Print the scores."""
    from ..core.metrics import Score, table

    result = evaluate_files(args.pred, args.gt, args.iou)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['n_files']} file(s) matched")
        print(table([Score(**s) for s in result["pooled"]]))
    return 0
