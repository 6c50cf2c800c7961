"""Noise2Void: blind-spot masking and its loss.

A random few percent of the pixels of each patch are *masked*: their value is
replaced by something computed from their neighbours only, and the network
learns to predict the original (noisy) value there. Since pixel noise is
independent, the best prediction from the neighbourhood is the clean signal.

Two replacement rules:

- ``n2v``: the value of a random neighbour within ``radius`` (never the pixel
  itself), as in the original Noise2Void.
- ``n2v2``: the median of the neighbourhood *without* the centre pixel, as in
  N2V2 (Höck et al., 2022). A random neighbour keeps a trace of the pixel grid
  that shows as checkerboard artefacts; the median does not.
"""
from __future__ import annotations

import itertools

import torch

STRATEGIES = ("n2v", "n2v2")


def _offsets(ndim: int, radius: int, device: torch.device) -> torch.Tensor:
    """All non-zero offsets within a (2r+1)^ndim box, shape (K, ndim)."""
    rng = range(-radius, radius + 1)
    offs = [o for o in itertools.product(rng, repeat=ndim) if any(o)]
    return torch.tensor(offs, dtype=torch.long, device=device)


def _reflect(coords: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Mirror coordinates that fall outside ``[0, size)`` back inside (no edge repeat)."""
    coords = coords.abs()
    coords = torch.where(coords > size - 1, 2 * (size - 1) - coords, coords)
    return coords.clamp(min=0).minimum(size - 1)


def random_mask(shape: tuple[int, ...], fraction: float, generator: torch.Generator | None = None,
                device: torch.device | None = None) -> torch.Tensor:
    """A boolean mask of ``shape`` (B, C, *spatial) with about ``fraction`` pixels set.

    Sampling is stratified: one candidate pixel per grid cell of about
    ``1/fraction`` pixels, so masked pixels are spread evenly over each patch.
    """
    b, c, *spatial = shape
    ndim = len(spatial)
    cell = max(1, int(round((1.0 / max(fraction, 1e-6)) ** (1.0 / ndim))))
    grid = [max(1, s // cell) for s in spatial]
    # one random position inside each grid cell
    pos = [torch.randint(0, cell, (b, c, *grid), generator=generator) + torch.arange(g).view(
        *([1] * (2 + i)), g, *([1] * (ndim - i - 1))) * cell for i, g in enumerate(grid)]
    mask = torch.zeros(shape, dtype=torch.bool)
    idx = [torch.arange(b).view(b, 1, *([1] * ndim)).expand(b, c, *grid),
           torch.arange(c).view(1, c, *([1] * ndim)).expand(b, c, *grid)]
    pos = [p.clamp_max(s - 1) for p, s in zip(pos, spatial)]
    mask[tuple(i.reshape(-1) for i in idx + pos)] = True
    return mask.to(device) if device is not None else mask


def apply_mask(x: torch.Tensor, mask: torch.Tensor, strategy: str = "n2v2", radius: int = 2,
               generator: torch.Generator | None = None, sealed: bool = True) -> torch.Tensor:
    """``x`` (B, C, *spatial) with the masked pixels replaced from their neighbourhood.

    ``sealed`` replaces from unmasked neighbours only. Otherwise a masked pixel
    near another one can take its replacement from the other's own noisy value,
    so each sees a trace of the noise it must not see: a leak through the blind
    spot that grows with the masked fraction.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown N2V strategy {strategy!r}; use one of {STRATEGIES}")
    where = mask.nonzero(as_tuple=False)  # (N, 2 + ndim)
    if where.numel() == 0:
        return x
    size = torch.tensor(x.shape[2:], device=x.device)
    offs = _offsets(x.ndim - 2, radius, x.device)
    centre = where[:, None, 2:]
    coords = _reflect(centre + offs[None], size)  # (N, K, ndim)
    b = where[:, 0, None].expand(-1, coords.shape[1])
    c = where[:, 1, None].expand(-1, coords.shape[1])
    index = (b, c, *coords.unbind(-1))
    # near an edge a mirrored neighbour can be the pixel itself: never use it
    usable = ~(coords == centre).all(-1)
    if sealed:
        unmasked = usable & ~mask[index]
        usable = torch.where(unmasked.any(-1, keepdim=True), unmasked, usable)  # keep a choice in a crowd
    values = x[index]  # (N, K)
    if strategy == "n2v":
        score = torch.rand(values.shape, generator=generator).to(x.device).masked_fill(~usable, -1.0)
        replace = values.gather(1, score.argmax(1, keepdim=True))[:, 0]
    else:
        replace = values.masked_fill(~usable, float("nan")).nanmedian(dim=1).values
    out = x.clone()
    out[tuple(where.t())] = replace
    return out


def masked_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked pixels only."""
    m = mask.to(pred.dtype)
    return ((pred - target) ** 2 * m).sum() / m.sum().clamp_min(1.0)


def n2v_batch(x: torch.Tensor, fraction: float, strategy: str, radius: int = 2,
              generator: torch.Generator | None = None, sealed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The network input (masked ``x``) and the mask, for one training batch."""
    mask = random_mask(tuple(x.shape), fraction, generator, x.device)
    return apply_mask(x, mask, strategy, radius, generator, sealed), mask
