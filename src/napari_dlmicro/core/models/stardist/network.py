"""The StarDist network in PyTorch: object probability and star distances.

Two backbones, laid out like the official StarDist models so their Keras
weights load one to one: ``unet`` (2D and 3D; the image is first max-pooled
to the output grid by a short convolutional prelude) and ``resnet`` (the 3D
default: strided residual blocks reach the grid).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from napari_dlmicro.core.nets.unet import (
    ConvBlock,
    UNet,
    UNetConfig,
    activation,
    conv_nd,
)


@dataclass(frozen=True)
class StarDistNetConfig:
    """Everything needed to rebuild a StarDist network."""

    ndim: int = 2
    n_channels: int = 1
    n_rays: int = 32
    grid: tuple[int, ...] = (2, 2)
    backbone: str = "unet"
    unet: UNetConfig = field(default_factory=UNetConfig)
    conv_after: int = 128
    resnet_blocks: int = 4
    resnet_filters: int = 32
    resnet_kernel: int | tuple[int, ...] = 3
    resnet_n_conv: int = 3
    resnet_act: str = "relu"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unet"] = self.unet.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> StarDistNetConfig:
        d = dict(d)
        d["grid"] = tuple(d["grid"])
        d["unet"] = UNetConfig.from_dict(d.get("unet", {}))
        if isinstance(d.get("resnet_kernel"), list):
            d["resnet_kernel"] = tuple(d["resnet_kernel"])
        return cls(**d)

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        """Pixels of context, per spatial axis, that can change one output value.

        A safe upper bound (each convolution adds its half-kernel at its scale,
        each pooling or upsampling step its full window), so that tiles read
        with this much margin give exactly the outputs of the whole image.
        """
        out = []
        for d in range(self.ndim):
            at = lambda k, d=d: (tuple(k) if isinstance(k, (tuple, list)) else (int(k),) * self.ndim)[d] // 2
            radius, scale, pooled = 0, 1, np.ones(self.ndim, int)
            if self.backbone == "resnet":
                radius += 3 + 1  # the 7- and 3-wide convolutions before the blocks
                r = at(self.resnet_kernel)
                for _ in range(self.resnet_blocks):
                    pool = 1 + (np.asarray(self.grid) > pooled)
                    pooled *= pool
                    radius += r * scale + (int(pool[d]) - 1) * scale
                    scale *= int(pool[d])
                    radius += (self.resnet_n_conv - 1) * r * scale
                feat = r
            else:
                u, r = self.unet, at(self.unet.kernel)
                while tuple(pooled) != tuple(self.grid):
                    pool = 1 + (np.asarray(self.grid) > pooled)
                    pooled *= pool
                    radius += u.n_conv * r * scale + (int(pool[d]) - 1) * scale
                    scale *= int(pool[d])
                p = int(u.pool[d])
                for _ in range(u.depth):
                    radius += u.n_conv * r * scale + (p - 1) * scale
                    scale *= p
                radius += u.n_conv * r * scale
                for _ in range(u.depth):
                    scale //= p
                    radius += (p - 1) * scale + u.n_conv * r * scale
                feat = r
            if self.conv_after > 0:
                radius += feat * scale
            out.append(int(radius))
        return tuple(out)

    @property
    def div_by(self) -> tuple[int, ...]:
        """Input sizes must be multiples of these, per spatial axis."""
        if self.backbone == "resnet":
            return tuple(self.grid)
        return tuple(g * d for g, d in zip(self.grid, self.unet.div_by))


class SameConv(nn.Module):
    """A strided convolution with TensorFlow's 'same' padding (extra pixel at the end)."""

    def __init__(self, ndim: int, c_in: int, c_out: int, kernel, stride, bias: bool = True):
        super().__init__()
        self.kernel = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,) * ndim
        self.stride = tuple(stride)
        self.conv = conv_nd(ndim)(c_in, c_out, self.kernel, stride=self.stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for k, s in zip(reversed(self.kernel), reversed(self.stride)):
            total = max(k - s, 0)
            pads += [total // 2, total - total // 2]
        return self.conv(F.pad(x, pads))


class ResidualBlock(nn.Module):
    """CSBDeep's residual block: strided conv, convs, linear conv, shortcut, add, act."""

    def __init__(self, ndim: int, c_in: int, c_out: int, kernel, pool, n_conv: int, act: str):
        super().__init__()
        self.convs = nn.ModuleList([SameConv(ndim, c_in, c_out, kernel, pool)])
        for _ in range(n_conv - 1):
            self.convs.append(SameConv(ndim, c_out, c_out, kernel, (1,) * ndim))
        self.shortcut = SameConv(ndim, c_in, c_out, 1, pool) if (any(p != 1 for p in pool) or c_in != c_out) else None
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i < len(self.convs) - 1:
                y = self.act(y)
        skip = self.shortcut(x) if self.shortcut is not None else x
        return self.act(skip + y)


class StarDistNet(nn.Module):
    """Image (B, C, [Z,] Y, X) -> probability (B, 1, ...) and distances (B, R, ...) on the grid."""

    def __init__(self, config: StarDistNetConfig):
        super().__init__()
        self.config = c = config
        conv = conv_nd(c.ndim)
        if c.backbone == "unet":
            self.prelude = nn.ModuleList()
            pooled = np.ones(c.ndim, int)
            ch = c.n_channels
            while tuple(pooled) != tuple(c.grid):
                pool = 1 + (np.asarray(c.grid) > pooled)
                pooled *= pool
                for _ in range(c.unet.n_conv):
                    self.prelude.append(ConvBlock(c.ndim, ch, c.unet.filters, c.unet.kernel, c.unet.act))
                    ch = c.unet.filters
                pool_cls = nn.MaxPool2d if c.ndim == 2 else nn.MaxPool3d
                self.prelude.append(pool_cls(tuple(int(p) for p in pool)))
            self.body = UNet(UNetConfig.from_dict({**c.unet.to_dict(), "in_channels": ch}))
            body_out = self.body.config.out_channels
            feat_kernel, feat_act = c.unet.kernel, c.unet.act
        elif c.backbone == "resnet":
            n = c.resnet_filters
            self.prelude = nn.ModuleList(
                [SameConv(c.ndim, c.n_channels, n, 7, (1,) * c.ndim), SameConv(c.ndim, n, n, 3, (1,) * c.ndim)]
            )
            blocks, pooled, ch = [], np.ones(c.ndim, int), n
            for _ in range(c.resnet_blocks):
                pool = 1 + (np.asarray(c.grid) > pooled)
                pooled *= pool
                if any(p > 1 for p in pool):
                    n *= 2
                blocks.append(ResidualBlock(c.ndim, ch, n, c.resnet_kernel, tuple(int(p) for p in pool),
                                            c.resnet_n_conv, c.resnet_act))
                ch = n
            self.body = nn.Sequential(*blocks)
            body_out = ch
            feat_kernel, feat_act = c.resnet_kernel, c.resnet_act
        else:
            raise ValueError(f"unknown StarDist backbone {c.backbone!r}")
        self.features = ConvBlock(c.ndim, body_out, c.conv_after, feat_kernel, feat_act) if c.conv_after > 0 else None
        head_in = c.conv_after if c.conv_after > 0 else body_out
        self.prob = conv(head_in, 1, 1)
        self.dist = conv(head_in, c.n_rays, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.prelude:
            x = layer(x)
        x = self.body(x)
        if self.features is not None:
            x = self.features(x)
        return torch.sigmoid(self.prob(x)), self.dist(x)
