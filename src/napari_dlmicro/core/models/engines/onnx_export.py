"""Our torch networks as ONNX files: exported once per set of weights, cached on disk.

The file's name is a fingerprint of everything that shapes the graph and its
numbers: the network's class and configuration, its weights (bytes of every
tensor of the state dict), the torch version and the opset. Spatial sizes and
the batch stay dynamic, so one file serves every tile size and every
test-time view. Writing is atomic, so a crash never leaves a torn file.
"""
from __future__ import annotations

import copy
import hashlib
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.models.paths import engines_dir
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, cancellable_forward

OPSET = 17
_LOCK = threading.Lock()


def architecture_signature(net: nn.Module) -> str:
    """What the network computes apart from its weights: every module's class and plain settings.

    Two networks with the same weights can differ in settings without weights of their own (CARE's residual
    connection, N2V2's blur pooling), so a hash of the weights alone would mix them up.
    """
    parts = [f"{getattr(net, 'config', None)!r}", f"{getattr(net, 'unet_config', None)!r}"]
    for name, module in net.named_modules():
        plain = sorted((k, v) for k, v in vars(module).items()
                       if not k.startswith("_") and k != "training" and isinstance(v, (bool, int, float, str, tuple)))
        parts.append(f"{name}:{type(module).__name__}:{plain}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def weights_fingerprint(net: nn.Module, tag: str = "") -> str:
    """A hash of the network's architecture, weights, torch version and export settings (hex, 24 digits)."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{architecture_signature(net)}|{tag}|{torch.__version__}|{OPSET}".encode())
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def exportable(net: nn.Module) -> nn.Module:
    """A CPU copy of ``net`` in eval mode, to export without touching the original's device or mode."""
    return copy.deepcopy(net).cpu().eval()


def export_onnx(net: nn.Module, example: torch.Tensor, path: Path, output_names: Sequence[str],
                input_name: str = "input", channels_last_output: bool = False, token: CancelToken = NEVER) -> Path:
    """Write ``net`` as ONNX to ``path`` (atomically), batch and spatial sizes dynamic; returns ``path``.

    ``example`` (batch, channel, spatial...) fixes the channel count the graph takes. Tracing runs the
    network once on it; a cancelled ``token`` stops that between layers and nothing is written.
    """
    twin = exportable(net)
    n_spatial = example.ndim - 2
    in_axes = {0: "batch", **{2 + i: f"s{i}" for i in range(n_spatial)}}
    out_axes = ({0: "batch", **{1 + i: f"o{i}" for i in range(n_spatial)}} if channels_last_output
                else {0: "batch", **{2 + i: f"o{i}" for i in range(n_spatial)}})
    dynamic = {input_name: in_axes, **{name: out_axes for name in output_names}}
    path = Path(path)
    with atomic_output(path) as tmp, warnings.catch_warnings(), torch.no_grad(), cancellable_forward(twin, token):
        warnings.simplefilter("ignore")  # the exporter's notes on tracing and on its own deprecation
        # the TorchScript-based exporter: a second for our networks, where the dynamo one takes 15-40 s
        torch.onnx.export(twin, (example.detach().cpu().float(),), str(tmp), input_names=[input_name],
                          output_names=list(output_names), dynamic_axes=dynamic, opset_version=OPSET,
                          do_constant_folding=True, dynamo=False)
    return path


def warm_up_exporter() -> None:
    """Export a one-layer network to a temporary file: the exporter's first-time imports, done ahead of a job.

    Under the same lock as :func:`cached_onnx`: torch's exporter keeps global state, so two never overlap.
    """
    import tempfile

    with _LOCK, tempfile.TemporaryDirectory() as folder:
        export_onnx(nn.Conv2d(1, 1, 3), torch.zeros(1, 1, 8, 8), Path(folder) / "warm.onnx", ["output"])


def cached_onnx(net: nn.Module, example: torch.Tensor, output_names: Sequence[str], fingerprint: str,
                token: CancelToken = NEVER) -> Path:
    """The ONNX file of ``net`` for ``fingerprint``, exported on first use (a cancel stops the export)."""
    path = engines_dir() / f"{fingerprint}.onnx"
    with _LOCK:
        if not path.is_file():
            export_onnx(net, example, path, output_names, token=token)
    return path
