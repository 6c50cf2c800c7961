"""The deep classifier's network: a torchvision ResNet-18 that reads C image channels and an object mask.

The first convolution takes C + 1 channels; started from ImageNet, its
colour filters are kept for RGB images and averaged for any other number of
channels (scaled so the response stays the same), and the mask channel
starts at zero, so the pretrained network sees the image as it was trained
to. The head is a new linear layer to K classes. Image channels are
standardised with ImageNet's mean and spread before the network.

:func:`imagenet_weights` finds ImageNet's ResNet-18 weights in torch's
cache, or downloads them there once (checked against their hash, loaded with
``weights_only=True``); offline it says what to download and where to put it.
"""
from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.runtime.llvm import avoid_triton_crash

# torchvision imports torch._dynamo, which loads triton's LLVM; next to napari's software OpenGL that crashes
# the process, so the guard must run first (a dock imports this module after the viewer's window is up)
avoid_triton_crash()
import torchvision  # noqa: E402

IMAGENET_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
IMAGENET_SHA256_PREFIX = "f37072fd"  # torchvision names its files by the first hex digits of their SHA-256
DOWNLOAD_TIMEOUT_S = 30.0
RGB_MEAN, RGB_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = 0.449, 0.226

WeightsSource = Callable[[], tuple[dict | None, str]]  # -> (ImageNet state dict or None, what happened)


class ObjectNet(nn.Module):
    """ResNet-18 on (N, C + 1, S, S) crops: C image channels (normalised 0..1) and the object mask."""

    def __init__(self, n_channels: int, n_classes: int) -> None:
        super().__init__()
        self.n_channels, self.n_classes = int(n_channels), int(n_classes)
        self.resnet = torchvision.models.resnet18(weights=None, num_classes=self.n_classes)
        self.resnet.conv1 = nn.Conv2d(self.n_channels + 1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        rgb = self.n_channels == 3
        mean = RGB_MEAN if rgb else (GREY_MEAN,) * self.n_channels
        std = RGB_STD if rgb else (GREY_STD,) * self.n_channels
        # constants, not buffers: the weights file holds learnt tensors only
        self._mean = torch.tensor(mean).view(1, -1, 1, 1)
        self._std = torch.tensor(std).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = (x[:, : self.n_channels] - self._mean.to(x)) / self._std.to(x)
        return self.resnet(torch.cat([image, x[:, self.n_channels:]], dim=1))

    def start_from(self, imagenet: dict) -> None:
        """Load ImageNet weights into everything but the head, the first layer adapted to the channels."""
        state = {k: v for k, v in imagenet.items() if not k.startswith("fc.")}
        rgb = state.pop("conv1.weight")  # (64, 3, 7, 7)
        if self.n_channels == 3:
            image = rgb
        else:
            image = rgb.mean(dim=1, keepdim=True).repeat(1, self.n_channels, 1, 1) * (3.0 / self.n_channels)
        state["conv1.weight"] = torch.cat([image, torch.zeros_like(rgb[:, :1])], dim=1)
        missing, unexpected = self.resnet.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"fc.weight", "fc.bias"}:
            raise ValueError(f"not a ResNet-18 state dict (missing {missing[:3]}, unexpected {unexpected[:3]})")


def imagenet_file() -> Path:
    """Where torch (and torchvision) keep the ImageNet ResNet-18 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_URL.rsplit("/", 1)[1]


def imagenet_weights() -> tuple[dict | None, str]:
    """ImageNet's ResNet-18 state dict from torch's cache (downloaded there if missing), and what happened."""
    path = imagenet_file()
    try:
        if not path.is_file():
            _download(IMAGENET_URL, path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, UserError) as exc:
        return None, (f"ImageNet weights could not be had ({exc}): training from scratch. To start from them, "
                      f"download {IMAGENET_URL} and put it at {path}")
    return state, f"started from ImageNet weights ({path.name})"


def no_weights() -> tuple[dict | None, str]:
    """The weights source of a classifier trained from scratch by choice."""
    return None, "training from scratch (ImageNet weights switched off)"


def _download(url: str, path: Path) -> None:
    """Fetch ``url`` (45 MB) into memory, check its hash, then write it to ``path`` atomically."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        data = response.read()
    if not hashlib.sha256(data).hexdigest().startswith(IMAGENET_SHA256_PREFIX):
        raise ValueError(f"the download of {url} does not match its hash")
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
