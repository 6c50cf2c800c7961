"""Our Cellpose path against calling ``CellposeModel.eval`` directly, same image, same model.

Prints the seconds of each and the overhead ratio (ours / direct); it asserts
nothing about time. It uses the pretrained ``cpsam`` when it is in cellpose's
cache, and random Cellpose-SAM weights otherwise (the same network, so the same
time; the masks then mean nothing).

    python benchmarks/cellpose_overhead.py [--size 384] [--device auto] [--repeats 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.models.cellpose.segmenter import load_cellpose
from napari_dlmicro.core.models.cellpose.tiling import network_work
from napari_dlmicro.core.models.cellpose.weights import pretrained_location
from napari_dlmicro.core.runtime.cancel import NEVER
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Progress, run_to_end
from napari_dlmicro.core.runtime.threads import set_cpu_threads


def synthetic_cells(size: int, seed: int = 0) -> np.ndarray:
    """Bright discs about 30 px across on a noisy background, percentile-normalised."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices((size, size), dtype=np.float32)
    image = np.zeros((size, size), np.float32)
    for cy, cx in rng.uniform(15, size - 15, size=(size * size // 2500, 2)):
        image += ((yy - cy) ** 2 + (xx - cx) ** 2 < 14**2).astype(np.float32)
    image += rng.normal(0, 0.2, image.shape).astype(np.float32)
    return normalize_percentile(image)


def weights_for_benchmark(folder: Path) -> tuple[str, str]:
    """(model for load_cellpose, a line saying which weights these are)."""
    _, cached = pretrained_location("cpsam")
    if cached.is_file():
        return "cpsam", f"pretrained cpsam from {cached}"
    from cellpose.vit import CPSAM

    path = folder / "random_cpsam.pt"
    torch.manual_seed(0)
    torch.save(CPSAM().state_dict(), path)
    return str(path), "RANDOM Cellpose-SAM weights (cpsam is not in cellpose's cache): timings hold, masks do not"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384, help="side of the square test image (px)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    device = resolve_device(args.device)
    threads = set_cpu_threads()
    with tempfile.TemporaryDirectory() as folder:
        model, which = weights_for_benchmark(Path(folder))
        print(f"weights: {which}")
        load_s, seg = timed(lambda: load_cellpose(model, device))
    image = synthetic_cells(args.size)
    batches, tiles = network_work(image.shape, batch_size=seg.batch_size)
    print(f"device {device}, torch threads {threads}, net dtype {seg.model.net.dtype}, load {load_s:.1f} s")
    print(f"image {image.shape}, {tiles} tiles in {batches} batches of {seg.batch_size}")

    def direct():
        return seg.model.eval(image, batch_size=seg.batch_size, normalize=False)[0]

    def ours():
        events = []
        labels = run_to_end(seg.segment(image, {}, NEVER), events.append)
        return labels, sum(isinstance(e, Progress) for e in events)

    seg.model.eval(image[:64, :64], batch_size=seg.batch_size, normalize=False)  # warm-up
    direct_s, ours_s = [], []
    for _ in range(args.repeats):
        t, direct_labels = timed(direct)
        direct_s.append(t)
        t, (our_labels, n_progress) = timed(ours)
        ours_s.append(t)
    d, o = min(direct_s), min(ours_s)
    print(f"direct CellposeModel.eval: {d:.2f} s")
    print(f"ours (segment job):        {o:.2f} s  ({n_progress} progress events)")
    print(f"overhead ratio ours/direct: {o / d:.3f}")
    print(f"same labels: {np.array_equal(direct_labels, our_labels)} ({int(our_labels.max())} objects)")


if __name__ == "__main__":
    main()
