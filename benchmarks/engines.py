"""Our networks on ONNX Runtime and OpenVINO (float32) against today's torch path, on the CPU, side by side.

Run: ``python benchmarks/engines.py [--repeats 7] [--only stardist n2v care semantic cellpose]``

Every figure is the median of interleaved repetitions in one process (each
engine in turn, each repetition on a slightly different input), so that a
change in the machine's load hits every engine alike; the ratios are what to
read, not the seconds. The README's figures come from
``python benchmarks/engines.py --repeats 3 --only stardist n2v care semantic``
on a 2-core machine shared with other training runs (which slows torch's
threads more than the runtimes': read them as ratios of one run).

- StarDist network alone, the 32-filter 2D shape of ``2D_versatile_fluo`` (U-Net
  depth 3, grid 2, 32 rays), 512x512 and 1024x1024: today's torch path (the
  segmenter's torch forward), ONNX Runtime, OpenVINO; max |difference| to torch.
- Noise2Void (depth 2, 32 filters) and CARE prediction of a 512x512 image through
  ``denoise`` (tiles of 512, with and without the 8 test-time views).
- The semantic U-Net (depth 3, 32 filters, 3 classes), network alone, 512x512.
- Cellpose-SAM's network (ViT-L encoder, random weights: its speed does not
  depend on their values, and nothing is downloaded) on one 256x256 tile: torch
  fp32 against the same network exported to ONNX in ONNX Runtime and OpenVINO,
  with the largest flow difference.
Nothing is asserted.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from napari_dlmicro.core.models.engines.backends import backend
from napari_dlmicro.core.models.engines.onnx_export import export_onnx
from napari_dlmicro.core.runtime.threads import set_cpu_threads

ENGINES = ("torch", "onnxruntime", "openvino")


def interleaved(runs: dict[str, Callable[[int], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each run (called with the repetition's index), warm-up first, interleaved."""
    for run in runs.values():
        run(-1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(i)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def report(title: str, seconds: dict[str, float], base: str = "torch", extra: str = "") -> None:
    ref = seconds[base]
    cells = "  ".join(f"{n} {s:.3f} s ({ref / s:.2f}x)" for n, s in seconds.items())
    print(f"{title}: {cells}{('  ' + extra) if extra else ''}", flush=True)


def _inputs(shape: tuple[int, ...], n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.random(shape, dtype=np.float32)
    return [base * np.float32(1 + 1e-3 * i) for i in range(n + 1)]


def bench_stardist(repeats: int) -> None:
    from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
    from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
    from napari_dlmicro.core.nets.unet import UNetConfig

    torch.manual_seed(0)
    net = StarDistNet(StarDistNetConfig(ndim=2, n_rays=32, grid=(2, 2), unet=UNetConfig(ndim=2, depth=3,
                                                                                          filters=32)))
    models = {e: StarDistSegmenter(net, name="bench").use_engine(e) for e in ENGINES}
    for side in (512, 1024):
        xs = _inputs((side, side, 1), repeats)
        ref = models["torch"].forward(xs[0])
        diff = max(float(np.abs(a - b).max()) for e in ENGINES[1:] for a, b in zip(models[e].forward(xs[0]), ref))
        runs = {e: (lambda i, m=models[e], xs=xs: m.forward(xs[i + 1])) for e in ENGINES}
        report(f"StarDist 2D network alone {side}x{side}", interleaved(runs, repeats),
               extra=f"max |diff| {diff:.1e}")


def bench_restoration(kind: str, repeats: int) -> None:
    from napari_dlmicro.core.jobs.denoise import denoise
    from napari_dlmicro.core.models.restoration.network import build_model

    torch.manual_seed(0)
    model = build_model(kind, 2, 1, 2, 32, {"normalization": {"input_mode": "dataset", "percentiles": [1, 99.8],
                                                              "input": {"low": [0.0], "high": [1.0]}}})
    if kind == "care":
        model.config["normalization"] = {"input_mode": "per_image", "percentiles": [1, 99.8],
                                         "target": {"low": [0.0], "high": [1.0]}}
    images = [x[..., 0] for x in _inputs((512, 512, 1), repeats)]
    for tta in (False, True):
        ref = denoise(images[0], model, tta=tta, engine="torch")
        diff = max(float(np.abs(denoise(images[0], model, tta=tta, engine=e) - ref).max()) for e in ENGINES[1:])
        runs = {e: (lambda i, e=e, tta=tta: denoise(images[i + 1], model, tta=tta, engine=e)) for e in ENGINES}
        report(f"{kind.upper()} prediction 512x512{' with 8 views' if tta else ''}", interleaved(runs, repeats),
               extra=f"max |diff| {diff:.1e}")


def bench_semantic(repeats: int) -> None:
    from napari_dlmicro.core.models.semantic.network import SemanticModel, SemanticNet
    from napari_dlmicro.core.models.semantic.segmenter import SemanticSegmenter
    from napari_dlmicro.core.nets.unet import UNetConfig

    torch.manual_seed(0)
    net = SemanticNet(UNetConfig(ndim=2, depth=3, filters=32), 3)
    models = {e: SemanticSegmenter(SemanticModel(net)).use_engine(e) for e in ENGINES}
    xs = _inputs((512, 512, 1), repeats)
    same = min(float(np.mean(models[e].forward(xs[0]) == models["torch"].forward(xs[0]))) for e in ENGINES[1:])
    runs = {e: (lambda i, m=models[e]: m.forward(xs[i + 1])) for e in ENGINES}
    report("Semantic U-Net network alone 512x512", interleaved(runs, repeats), extra=f"equal classes {same:.5f}")


def cellpose_flows() -> torch.nn.Module:
    """Cellpose-SAM's network (random weights: its speed does not depend on them) giving its flows and probability."""
    from cellpose.vit import CPSAM

    class Flows(torch.nn.Module):  # without the network's unused second output
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)[0]

    torch.manual_seed(0)
    return Flows(CPSAM().eval()).eval()


def bench_cellpose(repeats: int) -> None:
    flows = cellpose_flows()
    xs = [x.transpose(2, 0, 1)[None] for x in _inputs((256, 256, 3), repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cpsam.onnx"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(flows, torch.from_numpy(xs[0]), path, ["flows"])
        print(f"Cellpose-SAM exported to ONNX in {time.perf_counter() - t0:.0f} s "
              f"({path.stat().st_size / 1e9:.2f} GB)", flush=True)
        threads = torch.get_num_threads()

        def torch_run(i):
            with torch.inference_mode():
                return flows(torch.from_numpy(xs[i + 1])).numpy()

        runs = {"torch": torch_run,
                "onnxruntime": lambda i: backend("onnxruntime", path, threads).run(xs[i + 1])[0],
                "openvino": lambda i: backend("openvino", path, threads).run(xs[i + 1])[0]}
        ref = runs["torch"](-1)
        diff = {e: float(np.abs(runs[e](-1) - ref).max()) for e in ("onnxruntime", "openvino")}
        report("Cellpose-SAM network, one 256x256 tile", interleaved(runs, repeats),
               extra=f"max |flow diff| ORT {diff['onnxruntime']:.1e}, OpenVINO {diff['openvino']:.1e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=["stardist", "n2v", "care", "semantic", "cellpose"])
    args = parser.parse_args(argv)
    print(f"CPU threads: {set_cpu_threads()}", flush=True)
    for name in args.only:
        if name == "stardist":
            bench_stardist(args.repeats)
        elif name in ("n2v", "care"):
            bench_restoration(name, args.repeats)
        elif name == "semantic":
            bench_semantic(args.repeats)
        elif name == "cellpose":
            bench_cellpose(max(3, args.repeats // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
