"""The semantic network: a U-Net that gives every pixel one of K classes, and its model folder.

Masks are class maps (0 = background, 1..K-1 the classes). The network is our
U-Net with a 1x1 head to K logits. The model folder holds ``config.json``
(kind ``semantic``) and ``weights.safetensors``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from napari_dlmicro.core.data.tiling import pad_to_multiple
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import reads_whole_folders
from napari_dlmicro.core.models.folder import load_safetensors, read_config
from napari_dlmicro.core.nets.unet import UNet, UNetConfig


class SemanticNet(nn.Module):
    """U-Net body + 1x1 convolution to ``n_classes`` logits."""

    def __init__(self, unet: UNetConfig, n_classes: int) -> None:
        super().__init__()
        self.unet_config, self.n_classes = unet, n_classes
        self.body = UNet(unet)
        self.head = (nn.Conv2d if unet.ndim == 2 else nn.Conv3d)(unet.filters, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class SemanticModel:
    """A trained semantic network and its normalisation-free prediction."""

    net: SemanticNet
    name: str = "semantic"

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class map for one normalised image (spatial..., C)."""
        shape = image.shape[:-1]
        x = pad_to_multiple(np.asarray(image, np.float32), self.net.unet_config.div_by)
        t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)[None]))
        dev = next(self.net.parameters()).device
        logits = self.net.eval()(t.to(dev))[0].argmax(0).cpu().numpy()
        return logits[tuple(slice(0, n) for n in shape)].astype(np.uint8)


def class_scores(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> dict[str, float]:
    """Pixel accuracy and mean IoU over the foreground classes present."""
    ious = []
    for k in range(1, n_classes):
        a, b = pred == k, truth == k
        union = np.count_nonzero(a | b)
        if union:
            ious.append(np.count_nonzero(a & b) / union)
    return {"accuracy": float(np.mean(pred == truth)), "mean_iou": float(np.mean(ious)) if ious else 0.0}


@reads_whole_folders
def load_semantic(folder: Path, device: torch.device | None = None) -> SemanticModel:
    """Load a semantic model folder."""
    cfg = read_config(folder)
    if cfg.get("kind") != "semantic":
        raise UserError(f"'{Path(folder).name}' is not a semantic segmentation model",
                        "pick a folder trained as 'semantic'")
    net = SemanticNet(UNetConfig.from_dict(cfg["unet"]), int(cfg["n_classes"]))
    load_safetensors(net, folder)
    return SemanticModel(net.to(device or torch.device("cpu")), cfg.get("name", Path(folder).name))
