"""Our networks as a bioimage.io package builds and runs them: one callable, plain keyword arguments.

The package's ``pytorch_state_dict`` weights name :func:`build_network` with
``kind`` and ``config`` (JSON values); ONNX and TorchScript weights are these
same modules traced. StarDist's two outputs become the one tensor that the
spec's StarDist postprocessing reads: probability then the ray distances,
channels last, on the network's grid. The classes here subclass ours without
adding parameters, so a state dict of our networks loads into them unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from napari_dlmicro.core.models.restoration.network import RestorationNet
from napari_dlmicro.core.models.semantic.network import SemanticNet
from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
from napari_dlmicro.core.nets.unet import UNetConfig

KINDS = ("stardist", "semantic", "restoration")


class StarDistProbDist(StarDistNet):
    """StarDist with one output (batch, spatial..., 1 + rays): the object probability, then the distances."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prob, dist = super().forward(x)
        return torch.cat([prob, dist], 1).movedim(1, -1)


def build_network(kind: str, config: dict) -> nn.Module:
    """The network of ``kind`` (stardist, semantic, restoration) that ``config`` describes, weights untrained.

    ``config``: for StarDist the network configuration, for the U-Nets ``unet`` and
    ``n_classes`` (semantic) or ``n_out`` and ``residual`` (restoration).
    """
    if kind == "stardist":
        return StarDistProbDist(StarDistNetConfig.from_dict(config))
    if kind == "semantic":
        return SemanticNet(UNetConfig.from_dict(config["unet"]), int(config["n_classes"]))
    if kind == "restoration":
        return RestorationNet(UNetConfig.from_dict(config["unet"]), int(config["n_out"]), bool(config["residual"]))
    raise ValueError(f"unknown network kind {kind!r}; one of {KINDS}")
