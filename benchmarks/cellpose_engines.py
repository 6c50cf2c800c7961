"""Cellpose-SAM's network on the CPU: torch fp32 against the same network exported to ONNX, in ONNX Runtime and
OpenVINO (float32), one 256x256 tile (the tile cellpose runs its network on), side by side in one process.

Run: ``python benchmarks/cellpose_engines.py [--repeats 3] [--weights FILE]``

The network is cellpose 4's own ``CPSAM`` (SAM's ViT-L encoder, about 300M
parameters). Without ``--weights`` it is randomly initialised: its speed does
not depend on the values of its weights, and the agreement of the engines can
be read on random weights too (nothing is downloaded). It is exported once
(``torch.onnx.export``, batch dynamic, the tile fixed at 256x256), then each
engine runs once to warm up and ``--repeats`` times more in turn (interleaved,
each repetition on a slightly different tile, so a change in the machine's
load hits every engine alike); the figures are medians and their ratios to
torch, with the median of each round's own ratio (engines of one round ran
seconds apart, under the same load) and the CPU seconds the process used per
tile (less sensitive to other processes than the wall clock). Agreement: the
largest |difference| to torch of the two flow channels and of the cell
probability (logits), over every timed tile. Nothing is asserted.

The README's figures: one run with ``--repeats 3`` and two with ``--repeats 5``,
random weights, 2 torch threads, on a 2-core CPU shared with other work (load
5-16: the wall times swing by 3x between rounds, so read the per-round ratios
and the CPU seconds).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from cellpose.vit import CPSAM
from torch import nn

from napari_dlmicro.core.models.engines.backends import backend
from napari_dlmicro.core.models.engines.onnx_export import OPSET
from napari_dlmicro.core.runtime.threads import set_cpu_threads

ENGINES = ("torch", "onnxruntime", "openvino")
TILE = 256


class FlowsOnly(nn.Module):
    """Cellpose's network with only its first output: the flows (Y, X) and the cell probability logit (its second
    output, a zero "style" vector kept for backward compatibility, is left out of the graph)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[0]


def export_flows(flows: nn.Module, path: Path) -> None:
    """``flows`` as ONNX at ``path``: the tile fixed at 256x256 (the ViT's position embedding is that size), the
    batch dynamic; the TorchScript-based exporter, as for our other networks."""
    example = torch.zeros((1, 3, TILE, TILE), dtype=torch.float32)
    with torch.no_grad():
        torch.onnx.export(flows, (example,), str(path), input_names=["input"], output_names=["flows"],
                          dynamic_axes={"input": {0: "batch"}, "flows": {0: "batch"}}, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)


def _tiles(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.random((1, 3, TILE, TILE), dtype=np.float32)
    return [base * np.float32(1 + 1e-2 * i) for i in range(n + 1)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", help="a Cellpose-SAM weights file (default: random weights)")
    args = parser.parse_args(argv)
    threads = set_cpu_threads()
    print(f"CPU threads: {threads}; torch {torch.__version__}", flush=True)
    torch.manual_seed(0)
    net = CPSAM()
    if args.weights:
        net.load_model(args.weights, device=torch.device("cpu"))
    flows = FlowsOnly(net).eval()
    tiles = _tiles(args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cpsam.onnx"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_flows(flows, path)
        print(f"exported to ONNX in {time.perf_counter() - t0:.0f} s ({path.stat().st_size / 1e9:.2f} GB)",
              flush=True)

        def torch_run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return flows(torch.from_numpy(x)).numpy()

        runs = {"torch": torch_run,
                "onnxruntime": lambda x: backend("onnxruntime", path, threads).run(x)[0],
                "openvino": lambda x: backend("openvino", path, threads).run(x)[0]}
        times: dict[str, list[float]] = {e: [] for e in ENGINES}
        cpu: dict[str, list[float]] = {e: [] for e in ENGINES}
        outs: dict[str, list[np.ndarray]] = {e: [] for e in ENGINES}
        for e in ENGINES:  # warm-up: sessions built, first-run allocations made
            t0 = time.perf_counter()
            runs[e](tiles[0])
            print(f"warm-up {e}: {time.perf_counter() - t0:.1f} s", flush=True)
        for i in range(args.repeats):
            for e in ENGINES:
                t0, c0 = time.perf_counter(), time.process_time()
                outs[e].append(runs[e](tiles[i + 1]))
                times[e].append(time.perf_counter() - t0)
                cpu[e].append(time.process_time() - c0)
            print(f"round {i + 1}: " + ", ".join(f"{e} {times[e][-1]:.2f} s" for e in ENGINES), flush=True)
    med = {e: statistics.median(times[e]) for e in ENGINES}
    weights = "its weights from " + args.weights if args.weights else "random weights"
    print(f"Cellpose-SAM network ({weights}), one {TILE}x{TILE} tile, fp32, median of {args.repeats}:")
    for e in ENGINES:
        rounds = statistics.median(t / s for t, s in zip(times["torch"], times[e]))
        line = (f"  {e:12s} {med[e]:7.2f} s  ({med['torch'] / med[e]:.2f}x torch; per round {rounds:.2f}x; "
                f"CPU {statistics.median(cpu[e]):.1f} s)")
        if e != "torch":
            flow = max(float(np.abs(a[:, :2] - b[:, :2]).max()) for a, b in zip(outs[e], outs["torch"]))
            prob = max(float(np.abs(a[:, 2] - b[:, 2]).max()) for a, b in zip(outs[e], outs["torch"]))
            scale = max(float(np.abs(b).max()) for b in outs["torch"])
            line += f"  max |flow diff| {flow:.1e}, max |cellprob diff| {prob:.1e} (outputs up to {scale:.1f})"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
