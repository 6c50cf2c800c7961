"""``napari-dlmicro segment IMAGE... -m MODEL -o OUTDIR``: labels and measurements for every image, headless."""
from __future__ import annotations

import argparse
import sys

from napari_dlmicro.cli.common import (
    add_cluster_flags,
    add_device_flag,
    add_setting_flags,
    cluster_choice,
    given,
    output_folder,
    run_with_progress,
    setting_type,
    wants_cluster,
)
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.inputs import sort_inputs
from napari_dlmicro.core.io.lazy import open_tiff_lazily, should_open_lazily
from napari_dlmicro.core.io.ome_zarr import open_image, open_images, zarr_name
from napari_dlmicro.core.jobs.blockwise_segment import DEFAULT_BLOCK, BlockwiseSegmentJob, blockwise_segment_job
from napari_dlmicro.core.jobs.many_images import segment_many_job
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
                       description="Writes OUTDIR/<stem>_labels.tif and OUTDIR/<stem>_measurements.csv per TIFF image; "
                       "OME-Zarr images (and TIFFs too big for memory) are segmented blockwise on dask into "
                       "OUTDIR/<stem>_labels.ome.zarr (an NGFF label image) and OUTDIR/<stem>_measurements.csv; "
                       "a plate gives one labels store with a label image per field.")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="TIFF files, OME-Zarr images (.ome.zarr), HCS plates, or folders of them")
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
    add_cluster_flags(p)
    p.add_argument("--labels-into-input", action="store_true",
                   help="OME-Zarr inputs: write the labels into the input's labels/ group (as labels/dlmicro) "
                        "instead of a new store")
    p.add_argument("--object-size", type=int, default=None, metavar="PX",
                   help="largest object diameter in pixels, for the blocks' halo (default: the model kind's)")
    p.add_argument("--axes", default=None, help="axes of the images, e.g. YX, ZYX, TYX, CYX (default: from the file)")
    p.add_argument("--norm", nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="normalisation percentiles "
                        f"(default: {_JOB['norm_low'].default:g} {_JOB['norm_high'].default:g})")
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
    """Segment every input; one line per file, image or plate on stdout."""
    inputs = sort_inputs(args.images)
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
    common = dict(channel=args.channel, settings=settings, tile=tile or None, norm_low=low, norm_high=high)
    engine = args.engine or _JOB["engine"].default
    in_memory = dict(common, engine=engine)
    big = [p for p in inputs.tiffs if should_open_lazily(p)]
    small = [p for p in inputs.tiffs if p not in big]
    if args.labels_into_input and (small or big):
        raise UserError("--labels-into-input applies to OME-Zarr inputs only", "drop it for TIFF files")
    if small:
        _small_tiffs(args, small, outdir, model, in_memory)
    for image in [open_image(p, args.fill_missing) for p in inputs.images] + [open_tiff_lazily(p) for p in big]:
        _blockwise(args, image, outdir, model, in_memory)
    for plate in inputs.plates:
        fields = open_images(plate, args.fill_missing)
        stem = zarr_name(plate)
        done = run_with_progress(lambda token, fields=fields, stem=stem: segment_many_job(
            fields, outdir, args.model, cluster_choice(args), args.resume, outdir / f"{stem}_labels.ome.zarr",
            outdir / f"{stem}_measurements.csv", args.labels_into_input, device=args.device, token=token,
            trust_code=args.trust_code, **in_memory), f"segmenting {plate.name}")
        where = plate if args.labels_into_input else outdir / f"{stem}_labels.ome.zarr"
        print(f"{plate}: {len(done)} field(s), {sum(max(d.n_objects, 0) for d in done)} objects -> {where}")
    sys.stdout.flush()
    return 0


def _small_tiffs(args, files, outdir, model, common) -> None:
    if wants_cluster(args, len(files)):
        done = run_with_progress(lambda token: segment_many_job(
            files, outdir, args.model, cluster_choice(args), args.resume, device=args.device, token=token,
            axes=args.axes, trust_code=args.trust_code, **common), "segmenting")
        for f in done:
            print(f"{f.source}: " + ("already done" if f.skipped else f"{f.n_objects} objects") + f" -> {f.labels}")
        return
    done = run_with_progress(lambda token: segment_files_job(files, outdir, model, token, axes=args.axes, **common),
                             "segmenting")
    for f in done:
        what = "classes" if f.result.class_map else "objects"
        print(f"{f.source}: {f.result.n_objects} {what} -> {f.labels}")


def _blockwise(args, image, outdir, model, common) -> None:
    job = BlockwiseSegmentJob(
        image=image, model=args.model,
        output=None if args.labels_into_input else outdir / f"{image.name}_labels.ome.zarr",
        labels_into_input=args.labels_into_input, block=args.block or DEFAULT_BLOCK, resume=args.resume,
        cluster=cluster_choice(args), device=args.device, object_size=args.object_size,
        measurements=outdir / f"{image.name}_measurements.csv", previews=False, trust_code=args.trust_code,
        **common)
    result = run_with_progress(lambda token: blockwise_segment_job(job, token), f"segmenting {image.name}")
    print(f"{image.path}: {result.n_objects} objects in {result.blocks} block(s) -> {result.labels}")
