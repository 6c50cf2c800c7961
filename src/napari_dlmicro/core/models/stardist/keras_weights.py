"""Official StarDist Keras weights (``weights_best.h5``) into our torch network.

Keras 2 stores each layer's arrays under ``/<layer>/<layer>/kernel:0`` (and
``bias:0``), possibly below a ``model_weights`` group. Named layers (the U-Net
levels, ``features``, ``prob``, ``dist``) map by name; the prelude and residual
convolutions that Keras numbered itself map in the order Keras created them.
The file is read with h5py as plain arrays: nothing is unpickled.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.stardist.network import SameConv, StarDistNet
from napari_dlmicro.core.nets.unet import ConvBlock

_AUTO_NAME = re.compile(r"^conv[23]d(?:_(\d+))?$")


def _conv_of(module: nn.Module) -> nn.Module:
    return module.conv if isinstance(module, (ConvBlock, SameConv)) else module


def _torch_convs(net: StarDistNet, prefix: str = "") -> tuple[dict[str, nn.Module], list[nn.Module]]:
    """Our convolutions: those Keras names, and the rest in Keras' creation order."""
    named: dict[str, nn.Module] = {}
    unnamed: list[nn.Module] = []
    if net.config.backbone == "unet":
        unnamed += [_conv_of(m) for m in net.prelude if isinstance(m, ConvBlock)]
        for path, keras_name in net.body.keras_names.items():
            named[prefix + keras_name] = _conv_of(net.body.get_submodule(path))
    else:
        unnamed += [_conv_of(m) for m in net.prelude]
        for block in net.body:
            unnamed += [_conv_of(c) for c in block.convs]
            if block.shortcut is not None:
                unnamed.append(_conv_of(block.shortcut))
    if net.features is not None:
        named["features"] = _conv_of(net.features)
    named["prob"] = net.prob
    named["dist"] = net.dist
    return named, unnamed


def _read_layers(path: Path) -> dict[str, dict[str, np.ndarray]]:
    try:
        import h5py  # here, not at the top: importing h5py holds the GIL for ~60 ms

        f = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path.name} is not a readable HDF5 weights file ({exc})",
                        "re-download or re-export the model") from None
    with f:
        root = f.get("model_weights", f)
        stored = root.attrs.get("layer_names", list(root.keys()))
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in stored]
        layers: dict[str, dict[str, np.ndarray]] = {}
        for name in names:
            arrays: dict[str, np.ndarray] = {}
            if not isinstance(root.get(name), h5py.Group):
                continue  # not a Keras layer group (a stray dataset, or a name without its group)
            root[name].visititems(
                lambda key, obj, arrays=arrays: arrays.__setitem__(key.rsplit("/", 1)[-1].split(":")[0], obj[()])
                if isinstance(obj, h5py.Dataset)
                else None
            )
            if "kernel" in arrays:
                layers[name] = arrays
    if not layers:
        raise UserError(
            f"{path.name} holds no Keras convolution weights in the layout StarDist uses",
            "pick the weights_best.h5 (or weights_last.h5) of a StarDist model folder",
        )
    return layers


def _copy(conv: nn.Module, arrays: dict[str, np.ndarray], name: str, ndim: int) -> None:
    kernel = arrays["kernel"]
    order = (ndim + 1, ndim) + tuple(range(ndim))
    weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(order)))
    if tuple(weight.shape) != tuple(conv.weight.shape):
        raise UserError(
            f"layer '{name}' has weights of shape {tuple(weight.shape)}, "
            f"but the config describes {tuple(conv.weight.shape)}",
            "the config.json and the weights file come from different models; "
            "keep them together as StarDist saved them",
        )
    with torch.no_grad():
        conv.weight.copy_(weight)
        if conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(arrays["bias"]))


def load_keras_weights(net: StarDistNet, path: str | Path, prefix: str = "") -> None:
    """Copy the Keras StarDist weights at ``path`` into ``net`` (shapes checked)."""
    path = Path(path)
    layers = _read_layers(path)
    named, unnamed = _torch_convs(net, prefix)
    missing = [n for n in named if n not in layers]
    if missing:
        raise UserError(
            f"{path.name} lacks the layers {', '.join(missing[:4])}{'…' if len(missing) > 4 else ''} "
            "that the config describes",
            "the config.json and the weights file come from different models",
        )
    for name, conv in named.items():
        _copy(conv, layers[name], name, net.config.ndim)
    auto = sorted(
        (n for n in layers if _AUTO_NAME.match(n)),
        key=lambda n: int(_AUTO_NAME.match(n).group(1) or 0),
    )
    if len(auto) != len(unnamed):
        raise UserError(
            f"{path.name} has {len(auto)} unnamed convolutions where the config describes {len(unnamed)}",
            "the config.json and the weights file come from different models",
        )
    for name, conv in zip(auto, unnamed):
        _copy(conv, layers[name], name, net.config.ndim)
