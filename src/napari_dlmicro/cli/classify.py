"""``napari-dlmicro classify IMAGE... --masks DIR -m MODEL -o OUTDIR [--device ...]``.

Writes ``OUTDIR/<stem>_classes.csv`` (``label,class,probability``, one row per
object) and ``OUTDIR/<stem>_classmap.tif`` (each object's pixels set to its
class index, 1-based in the classifier's class order) for every image; masks
are matched by name (``a.tif`` with ``a.tif`` or ``a_labels.tif``).
"""
from __future__ import annotations

import argparse

from napari_dlmicro.cli.common import add_device_flag, output_folder, run_with_progress
from napari_dlmicro.core.jobs.classify import as_classifier, classify_files_job


def add_parser(subparsers) -> None:
    """Add ``classify``."""
    p = subparsers.add_parser("classify", help="give every segmented object a class with a trained classifier",
                              description=__doc__.splitlines()[0].strip("`. "))
    p.add_argument("images", nargs="+", metavar="IMAGE", help="TIFF files or folders of them")
    p.add_argument("--masks", required=True, help="folder of label images named like the images "
                   "(a.tif or a_labels.tif, as segment writes them)")
    p.add_argument("-m", "--model", required=True, help="classifier folder, or the name of a stored classifier")
    p.add_argument("-o", "--out", required=True, help="output folder (created if needed)")
    add_device_flag(p)
    p.set_defaults(run=run, command="classify")


def run(args: argparse.Namespace) -> int:
    """Classify every image and say what was found."""
    out = output_folder(args.out)
    classifier = as_classifier(args.model, args.device)
    done = run_with_progress(lambda token: classify_files_job(args.images, args.masks, classifier, out, token),
                             "classify")
    for f in done:
        counts = ", ".join(f"{name} {n}" for name, n in f.counts.items())
        print(f"{f.source.name}: {counts} -> {f.table.name}, {f.class_map.name}")
    return 0
