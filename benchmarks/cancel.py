"""How long a job takes to stop after Cancel, for every kind of job, on units of work of ten seconds or more.

Each case runs a job (the same core generator the docks and the CLI run) in a
thread, cancels its token after a moment (early, in the middle of its first
unit of work, later), and times from the cancel to the moment the job has
ended. A dock is idle at the click (it does not wait for the job, see
``workers.py``); this is how long the job itself keeps the CPU afterwards.
The networks have random weights: only the time of a unit matters here.

    python benchmarks/cancel.py                 # every case but Cellpose-SAM
    python benchmarks/cancel.py --cellpose      # with Cellpose-SAM (random ViT-L weights, ~5 GB of memory)
    python benchmarks/cancel.py --gui-offload   # NMS and measurements in the helper process, as napari and the CLI run

Figures are printed, never asserted. The goal: at most 1 s in every case.
"""
from __future__ import annotations

import argparse
import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
import torch
from stardist.data import test_image_nuclei_2d

from napari_dlmicro.core.data.training_sets import Pair
from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.io.lazy import lazy_from_array
from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseSegmentJob, blockwise_segment_job
from napari_dlmicro.core.jobs.denoise import denoise_files_job, denoise_job
from napari_dlmicro.core.jobs.evaluate import evaluate_job
from napari_dlmicro.core.jobs.segment import SegmentJob, segment_job
from napari_dlmicro.core.jobs.segment_region import segment_region_job
from napari_dlmicro.core.jobs.train import train_job
from napari_dlmicro.core.models.classifier.data import LabelledImage, classifier_data
from napari_dlmicro.core.models.restoration.network import build_model
from napari_dlmicro.core.models.restoration.train import RestorationData
from napari_dlmicro.core.models.semantic.network import SemanticModel, SemanticNet
from napari_dlmicro.core.models.semantic.segmenter import SemanticSegmenter
from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.models.stardist.train import build_network, train_stardist
from napari_dlmicro.core.nets.unet import UNetConfig
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.events import run_to_end


def nuclei(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled nuclei sample tiled (mirrored) to ``size`` x ``size``."""
    img, gt = test_image_nuclei_2d(return_mask=True)
    tile = np.block([[img, img[:, ::-1]], [img[::-1], img[::-1, ::-1]]])
    lab = np.block([[gt, gt[:, ::-1] + gt.max()], [gt[::-1] + 2 * gt.max(), gt[::-1, ::-1] + 3 * gt.max()]])
    reps = -(-size // tile.shape[0])
    return np.tile(tile, (reps, reps))[:size, :size], np.tile(lab, (reps, reps))[:size, :size]


def stardist_model(filters: int = 32) -> StarDistSegmenter:
    torch.manual_seed(0)
    net, _ = build_network(StarDistTraining(filters=filters), 2, 1)
    return StarDistSegmenter(net, name="random")


def time_cancel(make: Callable[[CancelToken], object], after_s: float, gui_offload: bool) -> tuple[float, str]:
    """Seconds from cancel to the job's end, and how it ended.

    Each moment starts from a collected heap, as a run of its own would: a
    cancelled run's frames stay in reference cycles until Python's collector
    runs, which a quiet benchmark process rarely makes it do (three Cellpose-SAM
    runs are 20 GB).
    """
    gc.collect()
    token = CancelToken()
    ended = {}

    def run() -> None:
        offload.use_process_pool(gui_offload)
        try:
            result = run_to_end(make(token))
            # a training run answers a cancel by returning the best it saved
            ended["how"] = "cancelled" if getattr(result, "stopped", None) == "cancelled" else "finished first"
        except Cancelled:
            ended["how"] = "cancelled"
        finally:
            ended["at"] = time.perf_counter()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(after_s)
    t0 = time.perf_counter()
    token.cancel()
    thread.join(300)
    return ended.get("at", time.perf_counter()) - t0, ended.get("how", "still running after 300 s")


def cases(tmp: Path, with_cellpose: bool) -> list[tuple[str, Callable[[CancelToken], object], tuple[float, ...]]]:
    """(name, job factory, cancel moments in seconds) for every job kind."""
    big, big_gt = nuclei(4096)
    mid, mid_gt = nuclei(2048)
    sd = stardist_model()
    out = [
        ("segment: StarDist, one 2048^2 tile, 8 views", lambda t: segment_job(
            SegmentJob(mid, sd, settings={"views": 8}, tile=None, measure=False), t), (0.5, 5.0, 15.0)),
        ("segment: StarDist NMS of ~1M candidates (2048^2, threshold 0)", lambda t: segment_job(
            SegmentJob(mid, sd, settings={"views": 1, "prob_thresh": 0.0}, tile=None, measure=False), t),
         (4.0, 10.0)),
        ("segment: semantic U-Net, one 4096^2 tile", lambda t: segment_job(
            SegmentJob(big, SemanticSegmenter(SemanticModel(SemanticNet(UNetConfig(depth=3, filters=32), 3))),
                       tile=None, measure=False), t), (0.5, 5.0)),
        ("segment + measure: 4096^2, 4 tiles, measurements", lambda t: segment_job(
            SegmentJob(big, sd, settings={"views": 1}, tile=2048), t), (1.0, 20.0)),
    ]
    torch.manual_seed(0)
    net3, rays3 = build_network(StarDistTraining(filters=32, n_rays=96), 3, 1)
    sd3 = StarDistSegmenter(net3, name="random3d", rays=rays3)
    vol = np.stack([mid[:512, :512]] * 48).astype(np.float32)
    out.append(("segment: StarDist 3D, one 48x512x512 volume, 4 views", lambda t: segment_job(
        SegmentJob(vol, sd3, axes="ZYX", settings={"views": 4}, tile=None, measure=False), t), (1.0, 8.0)))
    out.append(("blockwise segment: StarDist 8 views, 4096^2 in 2048^2 blocks, a local dask worker process",
                lambda t: blockwise_segment_job(BlockwiseSegmentJob(
                    image=lazy_from_array(big, "YX", name="big"), model=sd, output=tmp / f"bw{time.time_ns()}.ome.zarr",
                    block=2048, cluster=ClusterChoice(workers=1), settings={"views": 8}, measure=False,
                    previews=False), t), (5.0, 20.0)))
    n2v = build_model("n2v", 2, 1, depth=3, filters=32, extra={"normalization": {
        "percentiles": [1.0, 99.8], "input_mode": "dataset", "input": {"low": [0.0], "high": [255.0]}}})
    out.append(("denoise: N2V, one 4096^2 tile, 8 test-time views", lambda t: denoise_job(
        n2v, big.astype(np.float32), "YX", tile=None, tta=True, token=t), (0.5, 5.0, 15.0)))
    for k in range(3):
        tifffile.imwrite(tmp / f"plane{k}.tif", mid.astype(np.float32))
    files = sorted(tmp.glob("plane*.tif"))
    out.append(("denoise folder: three 2048^2 files, untiled", lambda t: denoise_files_job(
        files, tmp / "out", n2v, "YX", tile=None, tta=True, token=t), (0.5, 8.0)))
    x = (mid[:1024, :1024] / mid.max()).astype(np.float32)
    out.append(("train StarDist: validation on a 1024^2 image with 8 views (first point of the curve)",
                lambda t: train_stardist([x[:512]], [mid_gt[:512, :1024]], [x], [mid_gt[:1024, :1024]],
                                         StarDistTraining(filters=32, patch=256, batch=8, minutes=5), t),
                (1.0, 6.0)))
    out.append(("train N2V: 512^2 patches, batch 16", lambda t: train_job(
        "n2v", RestorationData([big[:2048, :2048].astype(np.float32)], None, "YX"),
        {"patch": 512, "batch_size": 16, "minutes": 5}, token=t), (1.0, 6.0)))
    semantic_pairs = [Pair("a", mid, (mid_gt > 0).astype(np.uint8))]
    out.append(("train semantic U-Net: 512^2 patches, batch 8", lambda t: train_job(
        "semantic", semantic_pairs, {"patch": 512, "batch": 8, "filters": 32, "minutes": 5}, token=t), (1.0, 6.0)))
    clean = mid.astype(np.float32)
    noisy = np.random.default_rng(0).poisson(clean).astype(np.float32)
    out.append(("train CARE: 512^2 patches, batch 16", lambda t: train_job(
        "care", RestorationData([noisy], [clean], "YX"), {"patch": 512, "batch_size": 16, "minutes": 5}, token=t),
        (1.0, 6.0)))
    objects = classifier_data([LabelledImage("a", mid, mid_gt, {int(i): ("big" if i % 2 else "small")
                                                                for i in np.unique(mid_gt)[1:]})])
    out.append(("train deep classifier: ResNet-18 on ~700 object crops", lambda t: train_job(
        "classifier", objects, {"classifier": "deep", "minutes": 5, "pretrained": False}, token=t), (1.0, 6.0)))
    out.append(("preview view: StarDist 8 views, 2048^2 in view of a lazy 4096^2", lambda t: segment_region_job(
        lazy_from_array(big, "YX", name="big"), {"Y": slice(1024, 3072), "X": slice(1024, 3072)}, sd,
        settings={"views": 8}, token=t), (1.0, 6.0)))
    out.append(("evaluate: 4096^2 labels, ~3,000 objects each", lambda t: evaluate_job(
        big_gt, np.roll(big_gt, 2, axis=1), (0.5, 0.7, 0.9), t), (0.5, 3.0)))
    if with_cellpose:
        out += cellpose_cases(tmp, mid)
    return out


def cellpose_cases(tmp: Path, image: np.ndarray):
    """Cellpose-SAM with random ViT-L weights (the pretrained ones need a download)."""
    from cellpose.vit import CPSAM  # optional cases: cellpose loads torchvision and a ViT-L

    from napari_dlmicro.core.models.cellpose.segmenter import load_cellpose

    torch.manual_seed(0)
    weights = tmp / "random_cpsam.pt"
    torch.save(CPSAM().state_dict(), weights)
    model = load_cellpose(weights, torch.device("cpu"))
    crop = image[:512, :512]
    _, gt = nuclei(512)
    pairs = [Pair("a", crop, gt), Pair("b", crop[::-1].copy(), gt[::-1].copy())]
    return [("segment: Cellpose-SAM 512^2 (9 tiles of ~8 s)", lambda t: segment_job(
        SegmentJob(crop, model, measure=False), t), (2.0, 6.0)),
        ("train Cellpose-SAM: one 256^2 step (~a minute on a CPU)", lambda t: train_job(
            "cellpose", pairs, {"epochs": 1, "val_fraction": 0.5}, out=tmp / "cp", init=str(weights), token=t),
         (3.0, 20.0, 35.0, 45.0, 52.0))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cellpose", action="store_true", help="include Cellpose-SAM (slow, ~5 GB)")
    p.add_argument("--gui-offload", action="store_true", help="NMS and measurements in the helper process")
    p.add_argument("--only", default=None, help="run the cases whose name contains this text")
    p.add_argument("--out", type=Path, default=Path("bench-out/cancel"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch threads {torch.get_num_threads()}, helper process for NMS: {args.gui_offload}")
    worst = 0.0
    for name, make, moments in cases(args.out, args.cellpose):
        if args.only and args.only not in name:
            continue
        results = [time_cancel(make, m, args.gui_offload) for m in moments]
        worst = max([worst] + [dt for dt, how in results if how == "cancelled"])
        cells = ", ".join(f"{dt:.2f} s at {m:g} s ({how})" for m, (dt, how) in zip(moments, results))
        print(f"{name}: {cells}")
    print(f"worst cancel-to-end: {worst:.2f} s")


if __name__ == "__main__":
    main()
