"""``napari-dlmicro train KIND --images DIR [--targets DIR] -o MODELDIR``.

Kinds are looked up in :data:`TRAINERS` (kind -> function(args) -> int), so a
module for another kind (stardist, cellpose) adds itself with
:func:`register` and its own extra flags through :data:`EXTRA_FLAGS`.
"""
from __future__ import annotations

from collections.abc import Callable

from ..core.errors import UserError
from .common import add_device_flag, run_with_progress

TRAINERS: dict[str, Callable] = {}
EXTRA_FLAGS: list[Callable] = []  # functions(parser) adding kind-specific flags


def register(kind: str, trainer: Callable) -> None:
    """Make ``napari-dlmicro train KIND`` call ``trainer(args)``."""
    TRAINERS[kind] = trainer


def train_restoration_files(kind: str, images: str, targets: str | None, out: str, minutes: float | None = None,
                            epochs: int | None = None, patch: int = 64, val_fraction: float | None = None,
                            device: str = "auto", batch_size: int = 16, axes: str | None = None,
                            progress: bool = True, learning_rate: float | None = None):
    """Train N2V or CARE on TIFF files of a folder (CARE: pairs matched by name); returns the TrainResult."""
    from ..core.events import run_to_end
    from ..core.restoration_data import read_restoration_files
    from ..core.restoration_train import TrainSettings, train_restoration

    data, target_data, axes, files = read_restoration_files(kind, images, targets, axes)
    if val_fraction is None:
        val_fraction = TrainSettings.val_fraction
    settings = TrainSettings(kind=kind, axes=axes, minutes=minutes if epochs is None else None, epochs=epochs,
                             patch=patch, val_fraction=val_fraction, device=device, batch_size=batch_size,
                             learning_rate=learning_rate)
    job = train_restoration(data, target_data, settings, save_to=out)
    result = run_with_progress(job, f"train {kind}") if progress else run_to_end(job)
    result.model.config.setdefault("data", {"images": [f.name for f in files]})
    return result


def _run_restoration(args) -> int:
    result = train_restoration_files(args.kind, args.images, args.targets, args.out, args.minutes, args.epochs,
                                     args.patch or 64, args.val_fraction, args.device, args.batch_size, args.axes,
                                     learning_rate=args.lr)
    print(f"saved {args.kind} model to {result.folder} (validation loss {result.best_val_loss:.4g}, "
          f"{result.model.config.get('steps', 0)} steps)")
    return 0


register("n2v", _run_restoration)
register("care", _run_restoration)


def add_parser(subparsers) -> None:
    """Add ``train`` to the ``napari-dlmicro`` command."""
    p = subparsers.add_parser("train", help="train a model on a folder of images (pairs matched by file name)")
    p.add_argument("kind", choices=sorted(TRAINERS) + [k for k in ("stardist", "cellpose", "semantic") if k not in TRAINERS],
                   help="what to train")
    p.add_argument("--images", required=True, help="folder (or file) of training images")
    p.add_argument("--targets", help="folder of target images for CARE, named like the inputs")
    p.add_argument("-o", "--out", required=True, help="model folder to write")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default 3)")
    budget.add_argument("--epochs", type=int, default=None, help="number of epochs instead of a time budget")
    p.add_argument("--patch", type=int, default=None, help="patch size in pixels")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="fraction held out for validation (default: the kind's own, 0.1)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--axes", default=None, help="axes of the images (YX, ZYX, TYX, CYX, ...); read from the files by default")
    add_device_flag(p)
    for add in EXTRA_FLAGS:
        add(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Dispatch to the trainer of ``args.kind``."""
    trainer = TRAINERS.get(args.kind)
    if trainer is None:
        raise UserError(f"training {args.kind} is not available in this build", f"use one of {', '.join(TRAINERS)}")
    if args.minutes is None and args.epochs is None:
        args.minutes = 3.0
    return int(trainer(args) or 0)

from . import train_segmentation  # noqa: F401 - registers the stardist and cellpose kinds
