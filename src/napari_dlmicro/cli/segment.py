"""``napari-dlmicro segment``: instance (or semantic class) segmentation of TIFF files, headless."""
from __future__ import annotations

import sys
from pathlib import Path

from ..core.devices import resolve_device
from ..core.models.cache import get_segmenter
from ..core.segment import segment_file_job
from .common import add_device_flag, expand_inputs, run_with_progress


def add_parser(sub) -> None:
    """Register the subcommand."""
    p = sub.add_parser("segment", help="segment images into labels + measurements",
                       description="Writes OUTDIR/<stem>_labels.tif and OUTDIR/<stem>_measurements.csv per image.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="TIFF files or folders of them")
    p.add_argument("-m", "--model", required=True,
                   help="catalogue name (stardist:2D_versatile_fluo, cellpose:cpsam, …), a stored model, "
                        "or a model folder/file (StarDist, Cellpose or semantic)")
    p.add_argument("-o", "--outdir", required=True, type=Path)
    add_device_flag(p)
    p.add_argument("--tile", type=int, default=1024, help="tile size in pixels (0: whole image)")
    p.add_argument("--axes", default=None, help="axes of the images, e.g. YX, ZYX, TYX, CYX (default: from the file)")
    p.add_argument("--channel", type=int, default=None, help="channel to segment with a one-channel model")
    p.add_argument("--prob-thresh", type=float, default=None, help="StarDist probability threshold")
    p.add_argument("--nms-thresh", type=float, default=None, help="StarDist overlap threshold")
    p.add_argument("--views", type=int, default=None, choices=range(1, 9), metavar="{1..8}",
                   help="2D StarDist: average the network over this many flips and 90° turns (slower, steadier)")
    p.add_argument("--diameter", type=float, default=None, help="Cellpose object diameter in pixels")
    p.add_argument("--flow-threshold", type=float, default=None, help="Cellpose flow error threshold")
    p.add_argument("--cellprob-threshold", type=float, default=None, help="Cellpose cell probability threshold")
    p.add_argument("--norm", type=float, nargs=2, default=(1.0, 99.8), metavar=("LOW", "HIGH"),
                   help="normalisation percentiles")
    p.set_defaults(run=run)


def _settings(args) -> dict[str, float]:
    names = ("prob_thresh", "nms_thresh", "views", "diameter", "flow_threshold", "cellprob_threshold")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def run(args) -> int:
    """Segment every input; one line per file on stdout."""
    files = expand_inputs(args.images)
    model = get_segmenter(args.model, resolve_device(args.device))
    args.outdir.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files, 1):
        job = segment_file_job(path, args.outdir, model, axes=args.axes, channel=args.channel,
                               settings=_settings(args), tile=args.tile or None,
                               norm_low=args.norm[0], norm_high=args.norm[1])
        labels_path, _, result = run_with_progress(job, f"[{i}/{len(files)}] {path.name}")
        print(f"{path}: {result.n_objects} {'classes' if result.class_map else 'objects'} -> {labels_path}")
        sys.stdout.flush()
    return 0
