"""``napari-dlmicro denoise IMAGE... (-m MODEL | --n2v) -o OUTDIR``: restored float32 TIFFs, headless.

A CARE model trained with ``--upsample 2`` or ``4`` writes each image that
many times larger along the axes it upsamples, with the pixel size divided.
"""
from __future__ import annotations

import argparse

from napari_dlmicro.cli.common import (
    add_cluster_flags,
    add_device_flag,
    add_setting_flags,
    cluster_choice,
    given,
    output_folder,
    run_with_progress,
)
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.inputs import sort_inputs
from napari_dlmicro.core.io.lazy import open_tiff_lazily, should_open_lazily
from napari_dlmicro.core.io.ome_zarr import open_images
from napari_dlmicro.core.jobs.blockwise_denoise import BlockwiseDenoiseJob, blockwise_denoise_job
from napari_dlmicro.core.jobs.blockwise_segment import DEFAULT_BLOCK
from napari_dlmicro.core.jobs.denoise import DENOISE_SETTINGS, denoise_files_job, n2v_files_job, views_to_tta
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING
from napari_dlmicro.core.models.loader import kind_of, load_model
from napari_dlmicro.core.models.registry import BUDGET, Task, get_kind
from napari_dlmicro.core.runtime.devices import resolve_device

N2V_BUDGET = [s for s in get_kind("n2v").train_settings if s.name in BUDGET]


def add_parser(subparsers) -> None:
    """Add ``denoise`` to the ``napari-dlmicro`` command."""
    p = subparsers.add_parser("denoise", help="denoise images with a model, or train Noise2Void on them first",
                              description="Writes OUTDIR/<stem>_denoised.tif (float32) per TIFF image; a CARE "
                              "model trained with --upsample writes it that many times larger, with the pixel size "
                              "divided. OME-Zarr images (and TIFFs too big for memory) are denoised blockwise on "
                              "dask into OUTDIR/<stem>_denoised.ome.zarr.")
    p.add_argument("images", nargs="+", help="TIFF files, OME-Zarr images or plates, or folders of them")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("-m", "--model", help="model folder or stored model name (N2V or CARE), or an "
                                             "image-to-image bioimage.io package (.zip, folder, rdf.yaml, zoo id)")
    which.add_argument("--n2v", action="store_true", help="train Noise2Void on the inputs themselves first")
    p.add_argument("-o", "--out", required=True, help="output folder")
    add_setting_flags(p.add_mutually_exclusive_group(), N2V_BUDGET)
    p.add_argument("--save-model", default=None, help="with --n2v: also save the trained model to this folder")
    add_setting_flags(p, DENOISE_SETTINGS)
    p.add_argument("--axes", default=None,
                   help="axes of the images (YX, ZYX, TYX, CYX, ...); read from the files by default")
    p.add_argument("--trust-code", action="store_true",
                   help="let a bioimage.io package whose only usable weights need its own Python code run that code "
                        "(only for packages from a source you trust)")
    add_device_flag(p)
    add_cluster_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``denoise`` from parsed arguments; prints the files written."""
    inputs = sort_inputs(args.images)
    out = output_folder(args.out)
    big = [p for p in inputs.tiffs if should_open_lazily(p)]
    files = [p for p in inputs.tiffs if p not in big]
    lazy = [im for p in inputs.images + inputs.plates for im in open_images(p, args.fill_missing)]
    lazy += [open_tiff_lazily(p) for p in big]
    if lazy and args.n2v:
        raise UserError("--n2v trains on the inputs in memory, which OME-Zarr and very large inputs are not",
                        "train Noise2Void on TIFF crops (napari-dlmicro train n2v), then denoise with -m MODEL")
    tta = views_to_tta(args.views)
    written = []
    for image in lazy:
        job = BlockwiseDenoiseJob(image=image, model=args.model, output=out / f"{image.name}_denoised.ome.zarr",
                                  block=args.block or DEFAULT_BLOCK, resume=args.resume, cluster=cluster_choice(args),
                                  tile=args.tile or None,  # unset: each block in one go, like the whole image
                                  tta=tta, device=args.device, previews=False)
        done = run_with_progress(lambda token, job=job: blockwise_denoise_job(job, token), f"denoising {image.name}")
        written.append(done.image)
    if not files:
        for path in written:
            print(path)
        return 0
    tile = args.tile if args.tile is not None else DENOISE_SETTINGS[0].default
    engine = args.engine or ENGINE_SETTING.default
    if args.n2v:
        written += run_with_progress(lambda token: n2v_files_job(
            files, out, given(args, N2V_BUDGET), args.save_model, args.axes, args.device, tile or None, token,
            engine=engine, tta=tta), "train n2v, then denoise")
    else:
        if args.save_model:
            raise UserError("--save-model only applies with --n2v", "drop --save-model, the model is already saved")
        if given(args, N2V_BUDGET):
            raise UserError("--minutes and --epochs only apply with --n2v", "drop them, or train with --n2v")
        kind = get_kind(kind_of(args.model))
        if kind.task is not Task.RESTORE:
            raise UserError(f"'{args.model}' is a {kind.title} model, which cannot denoise",
                            "pick a Noise2Void or CARE model, or train one with --n2v")
        model = load_model(args.model, resolve_device(args.device), trust_code=args.trust_code)
        written += run_with_progress(lambda token: denoise_files_job(files, out, model, args.axes, tile or None,
                                                                    tta, token=token, engine=engine), "denoising")
    for path in written:
        print(path)
    return 0
