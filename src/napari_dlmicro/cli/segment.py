"""``napari-dlmicro segment IMAGE... -m MODEL -o OUTDIR``: labels and measurements for every image, headless."""
from __future__ import annotations

import argparse
import sys

from napari_dlmicro.cli.common import (
    add_device_flag,
    add_setting_flags,
    given,
    output_folder,
    run_with_progress,
    setting_type,
)
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import tiff_files
from napari_dlmicro.core.jobs.segment import SEGMENT_SETTINGS
from napari_dlmicro.core.jobs.segment_files import segment_files_job
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.registry import Task, kinds
from napari_dlmicro.core.runtime.devices import resolve_device

_JOB = {s.name: s for s in SEGMENT_SETTINGS}


def model_settings() -> list:
    """Every segmenting kind's settings, each flag once (the loaded model says which apply)."""
    seen, out = set(), []
    for kind in kinds(Task.SEGMENT):
        for s in kind.predict_settings:
            if s.name not in seen:
                seen.add(s.name)
                out.append((kind.title, s))
    return out


def add_parser(sub) -> None:
    """Register the subcommand."""
    p = sub.add_parser("segment", help="segment images into labels + measurements",
                       description="Writes OUTDIR/<stem>_labels.tif and OUTDIR/<stem>_measurements.csv per image.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="TIFF files or folders of them")
    p.add_argument("-m", "--model", required=True,
                   help="catalogue name (stardist:2D_versatile_fluo, cellpose:cpsam, …), a stored model, "
                        "a model folder/file (StarDist, Cellpose or semantic), or a bioimage.io package "
                        "(.zip, folder, rdf.yaml, zoo id or DOI)")
    p.add_argument("-o", "--outdir", required=True, help="output folder (created if needed)")
    add_device_flag(p)
    add_setting_flags(p, [_JOB["tile"], _JOB["channel"], _JOB["engine"]])
    p.add_argument("--trust-code", action="store_true",
                   help="let a bioimage.io package whose only usable weights need its own Python code run that code "
                        "(only for packages from a source you trust)")
    p.add_argument("--axes", default=None, help="axes of the images, e.g. YX, ZYX, TYX, CYX (default: from the file)")
    p.add_argument("--norm", nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help=f"normalisation percentiles (default: {_JOB['norm_low'].default:g} "
                        f"{_JOB['norm_high'].default:g})")
    group = p.add_argument_group("model settings (default: the model's own)")
    for title, s in model_settings():
        group.add_argument(s.flag, dest=s.name, type=setting_type(s), default=None, metavar=s.name.upper(),
                           help=f"{title}: {s.help} [{s.range_text()}]")
    p.set_defaults(run=run)


def _norm(args) -> tuple[float, float]:
    if args.norm is None:
        return _JOB["norm_low"].default, _JOB["norm_high"].default
    return _JOB["norm_low"].check(args.norm[0]), _JOB["norm_high"].check(args.norm[1])


def run(args: argparse.Namespace) -> int:
    """Segment every input; one line per file on stdout."""
    files = tiff_files(args.images)
    outdir = output_folder(args.outdir)
    model = get_segmenter(args.model, resolve_device(args.device), trust_code=args.trust_code)
    settings = {name: value for name, value in given(args, [s for _, s in model_settings()]).items()}
    own = {s.name for s in model.info.settings}
    foreign = sorted(set(settings) - own)
    if foreign:
        flags = ", ".join("--" + n.replace("_", "-") for n in foreign)
        raise UserError(f"{flags} do(es) not apply to {model.info.name} ({model.info.kind})",
                        f"use {', '.join('--' + n.replace('_', '-') for n in sorted(own)) or 'no model settings'}")
    low, high = _norm(args)
    tile = args.tile if args.tile is not None else _JOB["tile"].default
    done = run_with_progress(lambda token: segment_files_job(
        files, outdir, model, token, axes=args.axes, channel=args.channel, settings=settings, tile=tile or None,
        norm_low=low, norm_high=high, engine=args.engine or _JOB["engine"].default), "segmenting")
    for f in done:
        what = "classes" if f.result.class_map else "objects"
        print(f"{f.source}: {f.result.n_objects} {what} -> {f.labels}")
    sys.stdout.flush()
    return 0
