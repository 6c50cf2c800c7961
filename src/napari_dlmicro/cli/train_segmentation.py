"""``napari-dlmicro train stardist|cellpose|semantic --images DIR --masks DIR -o MODELDIR``.

Registers the segmentation kinds with the ``train`` subcommand; pairs are
matched by file name (``a.tif`` with ``a.tif`` or ``a_masks.tif``). With
``--images`` alone, the folder is a training set (images/ + masks/, or
Cellpose's ``*_masks.tif`` files).
"""
from __future__ import annotations

from .common import run_with_progress


def add_flags(parser) -> None:
    """Flags only the segmentation kinds use."""
    from ..core.train import AUGMENTATIONS, DEFAULT_AUGMENT, INTENSITY_GAIN, SCALE_RANGE

    parser.add_argument("--masks", default=None, help="folder of label masks (stardist, cellpose) or class maps (semantic), named like the images")
    parser.add_argument("--init", default=None, help="continue training from this model (stored name, folder or catalogue name)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate")
    parser.add_argument("--augment", default=None,
                        help=f"comma-separated: {', '.join(AUGMENTATIONS)}, or none (default: {','.join(DEFAULT_AUGMENT)}); "
                             f"rotate turns by any angle, scale zooms {SCALE_RANGE[0]}-{SCALE_RANGE[1]}x, "
                             f"intensity scales {INTENSITY_GAIN[0]}-{INTENSITY_GAIN[1]}x")


def _run(args) -> int:
    from ..core.datasets import load_pairs
    from ..core.train import parse_augment
    from ..core.train_segmentation import SegmentationTraining, train_segmentation

    if args.kind == "cellpose" and args.patch is None:
        args.patch = 256
    spec = SegmentationTraining(
        kind=args.kind, out=args.out, init=args.init,
        val_fraction=SegmentationTraining.val_fraction if args.val_fraction is None else args.val_fraction,
        minutes=args.minutes, epochs=args.epochs, patch=args.patch or 128,
        batch=args.batch_size if args.batch_size != 16 else 4,
        lr=args.lr or (1e-5 if args.kind == "cellpose" else SegmentationTraining.lr),  # fine-tuning vs from scratch
        augment=tuple(sorted(parse_augment(args.augment))), device=args.device,
    )
    pairs = load_pairs(args.images, args.masks)
    result = run_with_progress(train_segmentation(pairs, spec), f"train {args.kind}")
    best = getattr(result, "best", {}) or {}
    score = best.get("f1_optimized", best.get("f1"))
    extra = f" (validation F1@0.5 {score:.3f})" if score is not None else ""
    print(f"saved {args.kind} model to {result.folder}{extra}")
    return 0


def register_all() -> None:
    """Add ``stardist``, ``cellpose`` and ``semantic`` to ``napari-dlmicro train``."""
    from . import train

    for kind in ("stardist", "cellpose", "semantic"):
        train.register(kind, _run)
    if add_flags not in train.EXTRA_FLAGS:
        train.EXTRA_FLAGS.append(add_flags)


register_all()
