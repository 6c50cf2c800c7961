"""One configurable U-Net (2D or 3D), reused by StarDist, Noise2Void and CARE.

The layer layout follows the classic CSBDeep U-Net (``n_conv`` convolutions a
level, max-pooling down, nearest upsampling and concatenation up), so that
official StarDist Keras weights map one to one onto its convolutions: the
Keras layer name of each convolution is kept in :attr:`UNet.keras_names`.

Two optional changes (both off by default, so that layout stays exact) serve
N2V2 (Höck et al., 2022), whose aim is to remove checkerboard artefacts:
``pool_mode="blur"`` downsamples with max-blur-pooling (a stride-1 max, then
a binomial blur with stride 2) instead of strided max-pooling, and
``top_skip=False`` drops the full-resolution skip connection.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

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
    pool_mode: str = "max"  # "max" | "blur" (max-blur-pool, N2V2)
    top_skip: bool = True  # False drops the full-resolution skip connection (N2V2)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
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

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        """A safe upper bound, per spatial axis, on the pixels of context that can change one output.

        Each convolution adds its half-kernel at its scale, each pooling (a
        blur-pool reads one more pixel each side) and upsampling step its
        window, so a region read with this much margin gives the whole image's outputs.
        """
        kernels = tuple(self.kernel) if isinstance(self.kernel, (tuple, list)) else (int(self.kernel),) * self.ndim
        out = []
        for d in range(self.ndim):
            half, pool = kernels[d] // 2, int(self.pool[d])
            radius, scale = 0, 1
            for _ in range(self.depth):  # convolutions, then pooling
                radius += self.n_conv * half * scale + pool * scale
                scale *= pool
            radius += self.n_conv * half * scale
            for _ in range(self.depth):  # upsampling, then convolutions
                scale //= pool
                radius += pool * scale + self.n_conv * half * scale
            out.append(radius)
        return tuple(out)


class BlurPool(nn.Module):
    """Max-blur-pooling: max over a ``pool`` window with stride 1, then a [1, 2, 1] blur with stride ``pool``.

    Axes with a pool factor of 1 are left alone; factors other than 1 or 2 fall
    back to plain max-pooling along that axis.
    """

    def __init__(self, ndim: int, pool: tuple[int, ...]) -> None:
        super().__init__()
        self.ndim, self.pool = ndim, tuple(int(p) for p in pool)
        self.register_buffer("taps", torch.tensor([0.25, 0.5, 0.25]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        for axis, p in enumerate(self.pool):
            if p == 1:
                continue
            dim = 2 + axis
            if p != 2:  # plain max-pooling along this axis
                size = [1] * self.ndim
                size[axis] = p
                x = (F.max_pool2d if self.ndim == 2 else F.max_pool3d)(x, size, size)
                continue
            # stride-1 max of each pixel and its successor (edge replicated), then blur with stride 2
            nxt = torch.cat([x.narrow(dim, 1, x.shape[dim] - 1), x.narrow(dim, x.shape[dim] - 1, 1)], dim)
            x = torch.maximum(x, nxt)
            shape = [1] * self.ndim
            shape[axis] = 3
            kernel = self.taps.to(x.dtype).view(1, 1, *shape).expand(c, 1, *shape)
            stride = [1] * self.ndim
            stride[axis] = 2
            n = x.shape[dim]
            x = torch.cat([x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1)], dim)  # replicate the edges
            conv = F.conv2d if self.ndim == 2 else F.conv3d
            x = conv(x, kernel, stride=tuple(stride), groups=c)
        return x


class UNet(nn.Module):
    """The U-Net body; its output has ``config.filters`` channels at input resolution."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        width = lambda level: int(c.filters * c.expansion**level)
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
            c_in = c_in + (width(n) if n > 0 or c.top_skip else 0)
            for i in range(c.n_conv - 1):
                level.append(ConvBlock(c.ndim, c_in, width(n), c.kernel, c.act, c.batch_norm))
                self.keras_names[f"up.{c.depth - 1 - n}.{i}"] = f"up_level_{n}_no_{i}"
                c_in = width(n)
            act = c.act if n > 0 else c.last_act
            level.append(ConvBlock(c.ndim, c_in, width(max(0, n - 1)), c.kernel, act, c.batch_norm))
            self.keras_names[f"up.{c.depth - 1 - n}.{c.n_conv - 1}"] = f"up_level_{n}_no_{c.n_conv}"
            c_in = width(max(0, n - 1))
            self.up.append(level)
        if c.pool_mode == "blur":
            self.pool = BlurPool(c.ndim, tuple(c.pool))
        elif c.pool_mode == "max":
            self.pool = (nn.MaxPool2d if c.ndim == 2 else nn.MaxPool3d)(tuple(c.pool))
        else:
            raise ValueError(f"unknown pool_mode {c.pool_mode!r}; use 'max' or 'blur'")
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
        if not self.config.top_skip:
            skips[0] = None
        for level, skip in zip(self.up, reversed(skips)):
            x = self.upsample(x)
            x = x if skip is None else torch.cat([x, skip], dim=1)
            for block in level:
                x = block(x)
        return x
