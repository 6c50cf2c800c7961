"""CARE super-resolution: which axes grow, the checks on pairs and stacks, and the upsampling head.

A model with an upsampling factor ``f`` is trained on pairs whose target is
``f`` times larger than its input, either in-plane (along Y and X, 2D or 3D)
or along Z only (isotropic restoration of a stack whose planes are ``f``
times farther apart than its pixels). The axes come from the pairs' sizes.

The network runs at the input's resolution (a quarter of the work of running
it on an interpolated 2x image); its last features are spread onto the finer
grid by a sub-pixel convolution (:class:`Upsampler`), and the result is added
to the input interpolated to the finer grid (cubic in 2D, linear in 3D), so
the network learns only what interpolation misses.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.nets.unet import conv_nd

FACTORS = (1, 2, 4)
MIN_Z_PLANES = 4  # a stack upsampled along Z needs this many planes of context


def factor_axes(factors: Sequence[int], spatial: str) -> str:
    """The axes a model upsamples (``YX``, ``Z`` or ``''``), from its per-axis factors."""
    return "".join(a for a, f in zip(spatial, factors) if f > 1)


def _size(shape: Sequence[int]) -> str:
    return "x".join(str(int(n)) for n in shape)


def pair_factors(low: Sequence[int], high: Sequence[int], factor: int, spatial: str, name: str) -> tuple[int, ...]:
    """Per-axis factors of one pair's spatial sizes (``low`` input, ``high`` target) under ``factor``.

    ``factor`` 1 wants equal sizes. Otherwise the target must be ``factor``
    times larger along Y and X, or (stacks) along Z alone; any other sizes
    are a :class:`UserError` that names them and the sizes expected.
    """
    low, high = tuple(int(n) for n in low), tuple(int(n) for n in high)
    what = f"{name}: the input is {_size(low)} ({spatial}) but its target is {_size(high)}"
    if factor == 1:
        if low != high:
            raise UserError(what, "each target must have exactly its input's size (register and crop them alike), "
                            "or give an upsampling factor for a larger target")
        return (1,) * len(low)
    ratios = [h / n for n, h in zip(low, high)]
    factors = tuple(factor if r == factor else 1 for r in ratios)
    grown = factor_axes(factors, spatial)
    allowed = ("YX", "Z") if spatial == "ZYX" else ("YX",)
    if not all(r in (1, factor) for r in ratios) or grown not in allowed:
        options = [tuple(n * factor if a in "YX" else n for n, a in zip(low, spatial))]
        if spatial == "ZYX":
            options.append((low[0] * factor,) + low[1:])
        wanted = " or ".join(f"{_size(o)} ({'along Z' if o[0] != low[0] else 'in-plane'})" if spatial == "ZYX"
                             else _size(o) for o in options)
        raise UserError(f"{what}, not {factor}x larger", f"with upsampling {factor} the target must be {wanted}; "
                        "give the factor the sizes are apart (1 for targets of the input's size)")
    return factors


def check_planes(n_planes: int, what: str = "the stack") -> None:
    """Refuse a stack too thin to upsample along Z."""
    if n_planes < MIN_Z_PLANES:
        raise UserError(f"{what} has {n_planes} plane(s), too few to upsample along Z",
                        f"give stacks of at least {MIN_Z_PLANES} planes, or a model that upsamples in-plane")


def shuffle(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Sub-pixel shuffle in any dimension: (B, C * prod(f), *n) -> (B, C, *(n * f))."""
    b, c, *spatial = x.shape
    nd = len(spatial)
    k = 1
    for f in factors:
        k *= int(f)
    x = x.reshape(b, c // k, *[int(f) for f in factors], *spatial)
    # interleave: (B, C, f1..fn, n1..nn) -> (B, C, n1, f1, ..., nn, fn)
    order = [0, 1] + [i for d in range(nd) for i in (2 + nd + d, 2 + d)]
    x = x.permute(*order)
    return x.reshape(b, c // k, *[n * int(f) for n, f in zip(spatial, factors)])


def interpolate(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """``x`` on the finer grid: cubic in 2D, linear in 3D (pixel centres kept, as a block average shrinks them)."""
    mode = "bicubic" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, scale_factor=tuple(float(f) for f in factors), mode=mode, align_corners=False)


class Upsampler(nn.Module):
    """Features at the input's resolution -> ``n_out`` channels ``factors`` times finer (a sub-pixel convolution).

    One 1x1 convolution gives every output pixel of a block its own weights
    on the features of the input pixel it lies in. It starts at zero, so a
    fresh model is plain interpolation (the residual path alone) and learning
    adds to it. Measured on the noisy nuclei sample (x2, 200 steps): a 3x3
    convolution with ReLU on the finer grid before it, or a default start,
    stalled for the first 40-60 steps or for good; this one did not.
    """

    def __init__(self, ndim: int, filters: int, n_out: int, factors: Sequence[int]) -> None:
        super().__init__()
        self.factors = tuple(int(f) for f in factors)
        k = 1
        for f in self.factors:
            k *= f
        self.head = conv_nd(ndim)(filters, n_out * k, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return shuffle(self.head(features), self.factors)
