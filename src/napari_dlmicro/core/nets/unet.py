"""One configurable U-Net (2D or 3D), reused by StarDist, Noise2Void and CARE.

The layer layout follows the classic CSBDeep U-Net (``n_conv`` convolutions a
level, max-pooling down, nearest upsampling and concatenation up), so that
official StarDist Keras weights map one to one onto its convolutions: the
Keras layer name of each convolution is kept in :attr:`UNet.keras_names`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "linear": nn.Identity, "elu": nn.ELU, "leakyrelu": nn.LeakyReLU}


def activation(name: str) -> nn.Module:
    """A fresh activation module by its Keras name."""
    try:
        return _ACTIVATIONS[(name or "linear").lower()]()
    except KeyError:
        raise ValueError(f"unsupported activation {name!r}") from None


def conv_nd(ndim: int):
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return nn.Conv2d if ndim == 2 else nn.Conv3d


class ConvBlock(nn.Module):
    """Convolution with 'same' padding, optional batch norm, then an activation."""

    def __init__(self, ndim: int, c_in: int, c_out: int, kernel, act: str, batch_norm: bool = False):
        super().__init__()
        kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (int(kernel),) * ndim
        self.conv = conv_nd(ndim)(c_in, c_out, kernel, padding=tuple(k // 2 for k in kernel))
        # Keras' BatchNormalization default epsilon, so imported statistics match.
        self.norm = (nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d)(c_out, eps=1e-3) if batch_norm else None
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x)


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a U-Net: dimensionality, depth, filters, kernel and pooling."""

    ndim: int = 2
    in_channels: int = 1
    depth: int = 2
    filters: int = 32
    kernel: int | tuple[int, ...] = 3
    n_conv: int = 2
    pool: tuple[int, ...] = (2, 2)
    act: str = "relu"
    last_act: str = "relu"
    batch_norm: bool = False
    expansion: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["pool"] = tuple(d.get("pool", (2,) * d.get("ndim", 2)))
        if isinstance(d.get("kernel"), list):
            d["kernel"] = tuple(d["kernel"])
        return cls(**d)

    @property
    def out_channels(self) -> int:
        return self.filters

    @property
    def div_by(self) -> tuple[int, ...]:
        """Each spatial size must be a multiple of these."""
        return tuple(p**self.depth for p in self.pool)


class UNet(nn.Module):
    """The U-Net body; its output has ``config.filters`` channels at input resolution."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        width = lambda level: int(c.filters * c.expansion**level)  # noqa: E731
        self.keras_names: dict[str, str] = {}
        self.down = nn.ModuleList()
        c_in = c.in_channels
        for n in range(c.depth):
            level = nn.ModuleList()
            for i in range(c.n_conv):
                level.append(ConvBlock(c.ndim, c_in, width(n), c.kernel, c.act, c.batch_norm))
                self.keras_names[f"down.{n}.{i}"] = f"down_level_{n}_no_{i}"
                c_in = width(n)
            self.down.append(level)
        self.middle = nn.ModuleList()
        for i in range(c.n_conv - 1):
            self.middle.append(ConvBlock(c.ndim, c_in, width(c.depth), c.kernel, c.act, c.batch_norm))
            self.keras_names[f"middle.{i}"] = f"middle_{i}"
            c_in = width(c.depth)
        self.middle.append(ConvBlock(c.ndim, c_in, width(max(0, c.depth - 1)), c.kernel, c.act, c.batch_norm))
        self.keras_names[f"middle.{c.n_conv - 1}"] = f"middle_{c.n_conv}"
        c_in = width(max(0, c.depth - 1))
        self.up = nn.ModuleList()
        for n in reversed(range(c.depth)):
            level = nn.ModuleList()
            c_in = c_in + width(n)
            for i in range(c.n_conv - 1):
                level.append(ConvBlock(c.ndim, c_in, width(n), c.kernel, c.act, c.batch_norm))
                self.keras_names[f"up.{c.depth - 1 - n}.{i}"] = f"up_level_{n}_no_{i}"
                c_in = width(n)
            act = c.act if n > 0 else c.last_act
            level.append(ConvBlock(c.ndim, c_in, width(max(0, n - 1)), c.kernel, act, c.batch_norm))
            self.keras_names[f"up.{c.depth - 1 - n}.{c.n_conv - 1}"] = f"up_level_{n}_no_{c.n_conv}"
            c_in = width(max(0, n - 1))
            self.up.append(level)
        pool_cls = nn.MaxPool2d if c.ndim == 2 else nn.MaxPool3d
        self.pool = pool_cls(tuple(c.pool))
        self.upsample = nn.Upsample(scale_factor=tuple(float(p) for p in c.pool), mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level in self.down:
            for block in level:
                x = block(x)
            skips.append(x)
            x = self.pool(x)
        for block in self.middle:
            x = block(x)
        for level, skip in zip(self.up, reversed(skips)):
            x = torch.cat([self.upsample(x), skip], dim=1)
            for block in level:
                x = block(x)
        return x
