"""Blockwise segmentation at scale: time per megapixel, peak memory per worker, workers, files, seams, a killed worker.

The bundled DSB2018 nuclei sample (stardist.data.test_image_nuclei_2d) is
mirrored into a 1024² tile (so objects stay whole) and repeated into square
OME-Zarr canvases of the sizes asked for (chunks of 512). Figures are printed,
never asserted. Run as:

    python benchmarks/scale.py --model MODEL_FOLDER --sizes 2048 8192 16384 32768 --workers 1 2

Without --model a small StarDist is trained first (about a minute). The
small sizes run in minutes on a 2-core machine; 16k² and 32k² belong on a
quiet machine. Lines:

- scale: per size, seconds per megapixel and the peak memory of a worker
  (ratios against the first size);
- workers: throughput with N workers against 1, on the first size;
- files: per-file seconds of --files small images on dask workers against one
  process doing them in a loop;
- seams: blockwise against whole-image labels on a --seam-size² image: F1 at
  IoU 0.5 and the objects touching a block border that differ;
- killed worker: a worker process killed after the first block; same labels?
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import psutil
import tifffile
import torch
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_image
from stardist.data import test_image_nuclei_2d

from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.evaluation.segmentation import score
from napari_dlmicro.core.io.lazy import lazy_from_array
from napari_dlmicro.core.io.ome_zarr import open_image
from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseSegmentJob, blockwise_segment_job
from napari_dlmicro.core.jobs.many_images import segment_many_job
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.jobs.segment_files import segment_files_job
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.stardist.folder import save_stardist
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.models.stardist.train import train_stardist_2d
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.events import Progress, run_to_end


def mirrored_tile() -> np.ndarray:
    img = test_image_nuclei_2d()
    return np.block([[img, img[:, ::-1]], [img[::-1], img[::-1, ::-1]]])


def canvas_store(folder: Path, size: int) -> Path:
    """An NGFF 0.4 image of size² made of the mirrored tile, written chunk by chunk."""
    tile = mirrored_tile()
    reps = -(-size // tile.shape[0])
    data = da.tile(da.from_array(tile, chunks=512), (reps, reps))[:size, :size].rechunk(512)
    path = folder / f"canvas{size}.ome.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(data, root, axes="yx", fmt=FormatV04(), storage_options={"chunks": (512, 512)})
    return path


def run_blockwise(image, model, out: Path, workers: int, block: int, on_event=None):
    shutil.rmtree(out, ignore_errors=True)
    job = BlockwiseSegmentJob(image=image, model=model, output=out, block=block, measure=False, previews=False,
                              cluster=ClusterChoice(workers=workers), device="cpu")
    return run_to_end(blockwise_segment_job(job), on_event)


def small_model(folder: Path) -> Path:
    img, gt = test_image_nuclei_2d(return_mask=True)
    settings = StarDistTraining(depth=2, filters=16, steps=300, lr=3e-3, patch=128, batch=4)
    model = run_to_end(train_stardist_2d([normalize_percentile(img)], [gt], settings, name="bench-stardist"))
    return save_stardist(model, folder / "model")


def border_objects_that_differ(labels: np.ndarray, whole: np.ndarray, block: int) -> tuple[int, int]:
    """Objects of ``whole`` touching a block border, and how many of them have no identical twin in ``labels``."""
    lines = np.zeros(whole.shape, bool)
    lines[block::block, :] = lines[block - 1::block, :] = True
    lines[:, block::block] = lines[:, block - 1::block] = True
    ids = np.unique(whole[lines & (whole > 0)])
    differ = 0
    for i in ids:
        mask = whole == i
        other = np.unique(labels[mask])
        if len(other) != 1 or other[0] == 0 or not np.array_equal(labels == other[0], mask):
            differ += 1
    return len(ids), differ


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None)
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--seam-size", type=int, default=4096)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dlmicro-scale-"))
    try:
        model_ref = Path(args.model) if args.model else small_model(folder)
        model = get_segmenter(model_ref, torch.device("cpu"))
        print(f"cores {os.cpu_count()}, memory {psutil.virtual_memory().total / 2**30:.0f} GiB, block {args.block}")
        first = None
        for size in args.sizes:
            image = open_image(canvas_store(folder, size))
            r = run_blockwise(image, str(model_ref), folder / "labels.ome.zarr", args.workers[0], args.block)
            per_mp = r.seconds / (size * size / 1e6)
            first = first or (per_mp, r.peak_rss)
            print(f"scale {size}²: {per_mp:.3f} s/MPix ({per_mp / first[0]:.2f}x), peak worker memory "
                  f"{r.peak_rss / 2**20:.0f} MiB ({r.peak_rss / max(first[1], 1):.2f}x), {r.n_objects} objects")
        image = open_image(canvas_store(folder, args.sizes[0]))
        base = None
        for n in args.workers:
            r = run_blockwise(image, str(model_ref), folder / "labels.ome.zarr", n, args.block)
            base = base or r.seconds
            print(f"workers {n}: {r.seconds:.1f} s, throughput {base / r.seconds:.2f}x of {args.workers[0]}")
        files = folder / "files"
        files.mkdir()
        tile = mirrored_tile()
        for i in range(args.files):
            y, x = (i * 37) % 768, (i * 91) % 768
            tifffile.imwrite(files / f"f{i:04d}.tif", tile[y:y + 128, x:x + 128])
        paths = sorted(files.glob("*.tif"))
        t = time.perf_counter()
        run_to_end(segment_files_job(paths, folder / "loop", model, tile=None))
        loop = (time.perf_counter() - t) / len(paths)
        t = time.perf_counter()
        run_to_end(segment_many_job(paths, folder / "dask", str(model_ref), ClusterChoice(workers=args.workers[-1]),
                                    device="cpu", tile=None))
        spread = (time.perf_counter() - t) / len(paths)
        print(f"files {len(paths)} of 128²: {spread * 1000:.1f} ms/file on {args.workers[-1]} dask worker(s), "
              f"{loop * 1000:.1f} ms/file in one process ({spread / loop:.2f}x)")
        seam = mirrored_tile()
        reps = -(-args.seam_size // seam.shape[0])
        big = np.tile(seam, (reps, reps))[:args.seam_size, :args.seam_size]
        r = run_blockwise(lazy_from_array(da.from_array(big, chunks=512), "YX"), model,
                          folder / "seam.ome.zarr", 1, args.block)
        labels = zarr.open_array(str(folder / "seam.ome.zarr" / "0"), mode="r")[:]
        whole = segment(big, model, tile=None).labels
        f1 = score(labels, whole, (0.5,))[0].f1
        touching, differ = border_objects_that_differ(labels, whole, args.block)
        print(f"seams {args.seam_size}²: F1@0.5 blockwise vs whole {f1:.4f}; {differ} of {touching} objects on "
              f"block borders differ; {r.conflicts} conflicting seam pixels")
        killed = []

        def kill(ev):
            if isinstance(ev, Progress) and ev.done >= 1 and not killed:
                procs = [q for q in psutil.Process().children(recursive=True)
                         if "spawn_main" in " ".join(q.cmdline()) and "resource_tracker" not in " ".join(q.cmdline())]
                if procs:
                    procs[0].kill()
                    killed.append(procs[0].pid)

        run_blockwise(lazy_from_array(da.from_array(big, chunks=512), "YX"), str(model_ref),
                      folder / "killed.ome.zarr", 2, args.block // 2, kill)
        again = zarr.open_array(str(folder / "killed.ome.zarr" / "0"), mode="r")[:]
        ref = run_blockwise(lazy_from_array(da.from_array(big, chunks=512), "YX"), model, folder / "ref.ome.zarr",
                            1, args.block // 2)
        same = np.array_equal(again, zarr.open_array(str(ref.labels / "0"), mode="r")[:])
        print(f"killed worker: {'a worker was killed' if killed else 'no worker killed'}; labels identical: {same}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
