"""Our networks on a CUDA GPU: torch fp32, torch bf16 (the product's GPU path) and ONNX Runtime's CUDA provider.

Run on a machine with a CUDA GPU:

    python benchmarks/gpu_engines.py [--repeats 20] [--only stardist2d stardist3d n2v cellpose]

Every figure is the median of interleaved repetitions in one process (each
engine in turn), from a host (numpy) input to a host output, as the
segmenters and ``denoise`` call their networks; every repetition gets its own
input, so no engine is timed on a cached output. Columns:

- ``torch-fp32``: torch as installed (cuDNN may use TF32 in convolutions, torch's default);
- ``torch-bf16``: the same under bf16 autocast, the product's GPU path (``runtime.devices.autocast``);
- ``torch-bf16-bench``: bf16 with ``torch.backends.cudnn.benchmark`` (cuDNN times its algorithms per shape);
- ``ort-cuda``: the float32 ONNX file the CPU engines run, in ONNX Runtime's CUDA provider (its default
  exhaustive convolution search), where the installed onnxruntime has that provider (onnxruntime-gpu);
- ``ort-cpu``: the same file on ONNX Runtime's CPU provider, all cores, for scale.

Ratios are against ``torch-bf16``; ``diff`` is the largest |output - torch-fp32|
over the largest |torch-fp32 output|. Nothing is asserted.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from engines import _inputs, cellpose_flows, interleaved  # the CPU benchmark beside this one

from napari_dlmicro.core.models.engines.onnx_export import export_onnx

CASES = ("stardist2d", "stardist3d", "n2v", "cellpose")
BASE = "torch-bf16"
DEVICE = ["cuda"]  # --device cpu: a dry run of the script on a machine without a GPU


def _as_list(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def torch_engine(net: torch.nn.Module, bf16: bool, bench: bool) -> Callable[[np.ndarray], list[np.ndarray]]:
    """Host input to host outputs through ``net`` on the GPU."""
    def run(x: np.ndarray) -> list[np.ndarray]:
        torch.backends.cudnn.benchmark = bench
        precision = torch.autocast(DEVICE[0], dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with torch.inference_mode(), precision:
            outs = _as_list(net(torch.from_numpy(x).to(DEVICE[0])))
        return [o.float().cpu().numpy() for o in outs]
    return run


def ort_engine(path: Path, provider: str) -> Callable[[np.ndarray], list[np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if provider == "CUDAExecutionProvider":
        providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    else:
        options.intra_op_num_threads = os.cpu_count() or 1
        providers = ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), options, providers=providers)
    if provider not in session.get_providers():
        raise RuntimeError(f"{provider} did not load (session runs on {session.get_providers()})")
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def has_ort_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    preload = getattr(ort, "preload_dlls", None)  # CUDA and cuDNN from the nvidia-* wheels torch uses
    if preload is not None:
        with contextlib.suppress(Exception):
            preload()
    return True


def compare(title: str, net: torch.nn.Module, shape: tuple[int, ...], names: list[str], repeats: int,
            folder: Path, cpu: bool) -> None:
    """Time one network on every engine, interleaved, and print one line."""
    net = net.eval()
    xs = _inputs(shape, repeats)
    path = folder / f"{title.split()[0].lower()}.onnx"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # traced on a small example: sizes stay dynamic in the file, and tracing a large one takes long
        example = xs[0][(slice(0, 1), slice(None), *(slice(0, min(n, 256)) for n in shape[2:]))]
        export_onnx(net, torch.from_numpy(np.ascontiguousarray(example)), path, names)
    export_s = time.perf_counter() - t0
    net = net.to(DEVICE[0])
    engines = {"torch-fp32": torch_engine(net, False, False), BASE: torch_engine(net, True, False),
               "torch-bf16-bench": torch_engine(net, True, True)}
    if has_ort_cuda():
        engines["ort-cuda"] = ort_engine(path, "CUDAExecutionProvider")
    if cpu:
        engines["ort-cpu"] = ort_engine(path, "CPUExecutionProvider")
    ref = engines["torch-fp32"](xs[0])
    scale = max(float(np.abs(r).max()) for r in ref) or 1.0
    # the first run of each (cuDNN's searches, ONNX Runtime's allocations) also gives the difference
    diff = {n: max(float(np.abs(a - b).max()) for a, b in zip(run(xs[0]), ref)) / scale for n, run in engines.items()}
    med = interleaved({n: (lambda i, run=run: run(xs[i + 1])) for n, run in engines.items()}, repeats)
    cells = "  ".join(f"{n} {med[n] * 1000:.1f} ms ({med[BASE] / med[n]:.2f}x, diff {diff[n]:.1e})" for n in engines)
    print(f"{title} {'x'.join(map(str, shape))} (export {export_s:.0f} s): {cells}", flush=True)


def stardist(ndim: int, side: int) -> tuple[torch.nn.Module, tuple[int, ...], list[str]]:
    from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
    from napari_dlmicro.core.nets.unet import UNetConfig

    torch.manual_seed(0)
    if ndim == 2:  # the shape of 2D_versatile_fluo
        cfg = StarDistNetConfig(ndim=2, n_rays=32, grid=(2, 2), unet=UNetConfig(ndim=2, depth=3, filters=32))
        return StarDistNet(cfg), (1, 1, side, side), ["prob", "dist"]
    # StarDist 3D's default: ResNet backbone, 96 rays, anisotropic grid
    cfg = StarDistNetConfig(ndim=3, n_rays=96, grid=(1, 2, 2), backbone="resnet", unet=UNetConfig(ndim=3))
    return StarDistNet(cfg), (1, 1, side // 4, side, side), ["prob", "dist"]


def n2v(side: int) -> tuple[torch.nn.Module, tuple[int, ...], list[str]]:
    from napari_dlmicro.core.models.restoration.network import build_model

    torch.manual_seed(0)
    model = build_model("n2v", 2, 1, 2, 32, {"normalization": {"input_mode": "dataset", "percentiles": [1, 99.8],
                                                               "input": {"low": [0.0], "high": [1.0]}}})
    return model.net, (1, 1, side, side), ["output"]


def cellpose(batch: int) -> tuple[torch.nn.Module, tuple[int, ...], list[str]]:
    return cellpose_flows(), (batch, 3, 256, 256), ["flows"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--only", nargs="*", choices=CASES, default=list(CASES))
    parser.add_argument("--no-cpu", action="store_true", help="leave out ONNX Runtime's CPU provider")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: a dry run of the script
    args = parser.parse_args(argv)
    DEVICE[0] = args.device
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    try:
        import onnxruntime as ort
        ort_line = f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}"
    except ImportError:
        ort_line = "no onnxruntime"
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "no GPU (dry run)"
    print(f"{gpu}, torch {torch.__version__}, {ort_line}, {os.cpu_count()} CPU cores",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for case in args.only:
            if case == "stardist2d":
                for side in (1024, 2048):
                    compare("StarDist-2D network", *stardist(2, side), args.repeats, folder, not args.no_cpu)
            elif case == "stardist3d":
                side = 256 if args.device == "cuda" else 64  # the dry run on a CPU: a small volume
                compare("StarDist-3D network", *stardist(3, side), args.repeats, folder, not args.no_cpu)
            elif case == "n2v":
                compare("N2V network", *n2v(2048), args.repeats, folder, not args.no_cpu)
            elif case == "cellpose":
                compare("Cellpose-SAM network", *cellpose(8), max(5, args.repeats // 4), folder, False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
