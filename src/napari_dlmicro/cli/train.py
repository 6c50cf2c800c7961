"""``napari-dlmicro train KIND --images DIR [--masks DIR [--classes DIR] | --targets DIR] -o MODELDIR [settings]``.

One sub-command per kind of the registry, each with the flags its settings
declare (defaults and ranges included), so ``train stardist --help`` lists
exactly what StarDist takes. Pairs are matched by file name.
"""
from __future__ import annotations

import argparse

from napari_dlmicro.cli.common import add_device_flag, add_setting_flags, given, run_with_progress
from napari_dlmicro.core.jobs.train import read_training_data, train_job
from napari_dlmicro.core.models.registry import BUDGET, KINDS, Kind, TrainsOn

DATA_HELP = {
    TrainsOn.MASKS: "--masks DIR (label images named like the images), or --images alone for a training-set "
                    "folder (images/ + masks/, or Cellpose's *_masks.tif)",
    TrainsOn.CLASS_MAPS: "--masks DIR (class maps named like the images: 0 background, 1..K classes)",
    TrainsOn.TARGETS: "--targets DIR (target images named like the inputs)",
    TrainsOn.IMAGES: "the noisy images alone",
    TrainsOn.CLASSES: "--masks DIR (label images named like the images) and --classes DIR (<stem>.csv per image "
                      "with columns label,class; objects not listed are unlabelled; an optional classes.json lists "
                      "the classes in order with colours)",
}


def add_parser(subparsers) -> None:
    """Add ``train`` with one sub-command per kind."""
    p = subparsers.add_parser("train", help="train a model on images and their masks or targets")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in KINDS.values():
        _add_kind(kinds, kind)


def settings_of(kind: Kind, args: argparse.Namespace) -> dict:
    """The settings given on the command line for ``kind`` (what is not given keeps its default)."""
    return given(args, kind.train_settings)


def _add_kind(kinds, kind: Kind) -> None:
    k = kinds.add_parser(kind.name, help=f"{kind.title}: {kind.description}",
                         description=f"Train {kind.title} ({kind.description}) on {DATA_HELP[kind.trains_on]}.")
    k.add_argument("--images", required=True, help="folder (or file) of training images")
    if kind.trains_on in (TrainsOn.MASKS, TrainsOn.CLASS_MAPS):
        k.add_argument("--masks", default=None, help=DATA_HELP[kind.trains_on])
        k.add_argument("--init", default=None, help="continue from this model (stored name, folder or catalogue name)")
    if kind.trains_on is TrainsOn.TARGETS:
        k.add_argument("--targets", required=True, help=DATA_HELP[kind.trains_on])
    if kind.trains_on is TrainsOn.CLASSES:
        k.add_argument("--masks", required=True, help="folder of label images named like the images")
        k.add_argument("--classes", required=True, help="folder of <stem>.csv tables (label,class), one per image; "
                       "objects not listed are unlabelled")
    if kind.trains_on in (TrainsOn.TARGETS, TrainsOn.IMAGES):
        k.add_argument("--axes", default=None,
                       help="axes of the images (YX, ZYX, TYX, CYX, ...); default: from the files")
    k.add_argument("-o", "--out", required=True, help="model folder to write")
    add_device_flag(k)
    budget = [s for s in kind.train_settings if s.name in BUDGET]
    rest = [s for s in kind.train_settings if s.name not in BUDGET]
    add_setting_flags(k.add_mutually_exclusive_group(), budget)
    add_setting_flags(k, rest, f"{kind.title} settings")
    k.set_defaults(run=run, command="train")


def run(args: argparse.Namespace) -> int:
    """Read the data, train, and say where the model went."""
    kind = KINDS[args.kind]
    data = read_training_data(kind.name, args.images, getattr(args, "masks", None), getattr(args, "targets", None),
                              getattr(args, "axes", None), getattr(args, "classes", None))
    result = run_with_progress(lambda token: train_job(
        kind.name, data, settings_of(kind, args), out=args.out, init=getattr(args, "init", None),
        device=args.device, token=token), f"train {kind.name}")
    if result.folder is None:
        print(f"{kind.name}: stopped before the first step; nothing was saved")
        return 1
    score = result.score()
    extra = f" (validation score {score:.3f})" if score is not None else (
        f" (validation loss {result.best_val_loss:.4g})" if result.best_val_loss != float("inf") else "")
    print(f"saved {kind.name} model to {result.folder}{extra}; {result.steps} step{'' if result.steps == 1 else 's'}")
    return 0
