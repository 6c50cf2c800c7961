"""CARE super-resolution: which axes grow, the checks on pairs and stacks, and the interpolation it starts from.

A model with an upsampling factor ``f`` is trained on pairs whose target is
``f`` times larger than its input, either in-plane (along Y and X, 2D or 3D)
or along Z only (isotropic restoration of a stack whose planes are ``f``
times farther apart than its pixels). The axes come from the pairs' sizes.

As CSBDeep's upsampling CARE does, the input is first interpolated to the
target's grid (cubic in 2D, linear in 3D) and the U-Net restores it there,
with the interpolated input as its residual, so it learns what interpolation
misses. Measured on the noisy nuclei sample (x2, 500 steps, the same U-Net and
pixels per patch): 29.37 dB this way, against 29.03 dB for the U-Net at the
input's resolution ending in a sub-pixel convolution, which costs about the
same per step but gives each output pixel a linear read of 16 features only.
Training patches are sized in the target's pixels, so a step costs the same
at every factor.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from napari_dlmicro.core.errors import UserError

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


def input_div_by(div_by: Sequence[int], factors: Sequence[int]) -> tuple[int, ...]:
    """What each input size must be a multiple of, for the interpolated input to fit a U-Net needing ``div_by``."""
    return tuple(max(1, int(d) // int(f)) if int(d) % int(f) == 0 else int(d) for d, f in zip(div_by, factors))


def check_planes(n_planes: int, what: str = "the stack") -> None:
    """Refuse a stack too thin to upsample along Z."""
    if n_planes < MIN_Z_PLANES:
        raise UserError(f"{what} has {n_planes} plane(s), too few to upsample along Z",
                        f"give stacks of at least {MIN_Z_PLANES} planes, or a model that upsamples in-plane")


def interpolate(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """``x`` on the finer grid: cubic in 2D, linear in 3D (pixel centres kept, as a block average shrinks them)."""
    mode = "bicubic" if x.ndim == 4 else "trilinear"
    return F.interpolate(x, scale_factor=tuple(float(f) for f in factors), mode=mode, align_corners=False)
