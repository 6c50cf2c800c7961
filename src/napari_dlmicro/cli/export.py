"""``napari-dlmicro export MODEL -o OUT.zip``: a model as a bioimage.io package (model spec 0.5), headless."""
from __future__ import annotations

import argparse

from napari_dlmicro.cli.common import run_with_progress
from napari_dlmicro.core.jobs.export import export_model_job
from napari_dlmicro.core.models.bioimageio.meta import DEFAULT_LICENCE, ExportMeta, parse_citation


def add_parser(sub) -> None:
    """Register the subcommand."""
    p = sub.add_parser("export", help="export a model as a bioimage.io package (.zip)",
                       description="Writes OUT.zip: a bioimage.io model package (spec 0.5) with ONNX, TorchScript and "
                                   "PyTorch weights, test tensors, a cover and documentation, which 'bioimageio test' "
                                   "passes. Authors, licence and citations are remembered for the next export.")
    p.add_argument("model", metavar="MODEL",
                   help="a stored model, a model folder (StarDist, semantic, N2V, CARE), an official StarDist folder "
                        "or a StarDist catalogue name")
    p.add_argument("-o", "--out", required=True, metavar="OUT.zip", help="the package to write")
    p.add_argument("--name", default=None, help="the package's name (default: the model's name and kind)")
    p.add_argument("--description", default=None, help="one or two sentences on what the model does")
    p.add_argument("--author", action="append", default=[], metavar="NAME",
                   help="an author (repeat for several; default: those of the last export)")
    p.add_argument("--licence", "--license", dest="licence", default=None,
                   help=f"an SPDX licence identifier (default: the last export's, else {DEFAULT_LICENCE})")
    p.add_argument("--cite", action="append", default=[], metavar="'TEXT | DOI-OR-URL'",
                   help="a work to cite besides the method's own paper (repeat for several)")
    p.add_argument("--test-image", default=None, metavar="FILE",
                   help="the image the test tensors are made from (default: the model's own training data, "
                        "else StarDist's sample images)")
    p.add_argument("--test-axes", default=None, help="axes of the test image (default: from the file)")
    p.add_argument("--check", action="store_true",
                   help="then run bioimage.io's own test of the package (every weight format; takes a while)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Export, print the package written (and the test's verdict with --check)."""
    meta = ExportMeta(name=args.name, description=args.description, authors=tuple(args.author),
                      licence=args.licence, citations=tuple(parse_citation(c) for c in args.cite))
    out = run_with_progress(lambda token: export_model_job(args.model, args.out, meta, args.test_image,
                                                           args.test_axes, check=args.check, token=token),
                            "exporting")
    print(out.path)
    if out.check is not None:
        print(f"bioimageio test: {out.check}")
        return 0 if out.check == "passed" else 1
    return 0
