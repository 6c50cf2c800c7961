"""StarDist's training targets and loss, and the batches a training step draws.

Targets come from stardist's geometry (``star_dist``/``star_dist3D`` for the
ray lengths, ``edt_prob`` for the object probability); the loss is
StarDist's: binary cross-entropy on the probability plus the mean absolute
ray error weighted by it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from stardist import edt_prob, star_dist, star_dist3D

from napari_dlmicro.core.data.augment import augment_pair, random_crop


def targets(labels: np.ndarray, n_rays: int, grid: tuple[int, ...], rays=None) -> tuple[np.ndarray, np.ndarray]:
    """Probability (grid-subsampled) and ray lengths (..., R) for one label patch."""
    sub = tuple(slice(None, None, g) for g in grid)
    prob = edt_prob(labels)[sub].astype(np.float32)
    if labels.ndim == 2:
        dist = star_dist(labels, n_rays, grid=tuple(grid))
    else:
        dist = star_dist3D(labels, rays, grid=tuple(grid))
    return prob, dist.astype(np.float32)


def stardist_loss(prob, dist, prob_t, dist_t, dist_weight: float = 0.2) -> torch.Tensor:
    """StarDist's loss: BCE on probability + prob-weighted mean absolute ray error."""
    bce = F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), prob_t)
    mae = (prob_t * (dist - dist_t).abs().mean(dim=1, keepdim=True)).sum() / prob_t.sum().clamp_min(1e-6)
    return bce + dist_weight * mae


def training_batch(rng, images, masks, patch, kinds, batch, cfg, rays, channels_last: bool):
    """``batch`` random, augmented patches and their targets: (images, probabilities, distances) tensors."""
    xb, pb, db = [], [], []
    for _ in range(batch):
        i = int(rng.integers(len(images)))
        img, lab = random_crop(rng, images[i], masks[i], patch, kinds=kinds)
        img, lab = augment_pair(rng, img, lab, kinds)
        p, d = targets(lab, cfg.n_rays, cfg.grid, rays)
        xb.append(np.moveaxis(img, -1, 0))
        pb.append(p[None])
        db.append(np.moveaxis(d, -1, 0))
    x = torch.from_numpy(np.stack(xb))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(np.stack(pb)), torch.from_numpy(np.stack(db))


def validation_patches(images, masks, patch, cfg, rays, limit: int = 8):
    """Fixed validation patches (a grid of crops) for the validation loss."""
    xs, ps, ds = [], [], []
    div = cfg.div_by
    smallest = [min(m.shape[d] for m in masks) for d in range(len(patch))]
    patch = tuple(min(p, n // v * v) for p, n, v in zip(patch, smallest, div))
    if min(patch) < 1:
        return None
    for img, lab in zip(images, masks):
        starts = [range(0, max(n - p, 0) + 1, p) for n, p in zip(lab.shape, patch)]
        for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, lab.ndim):
            sl = tuple(slice(c, c + p) for c, p in zip(corner, patch))
            if not lab[sl].any():
                continue
            p_, d_ = targets(np.ascontiguousarray(lab[sl]), cfg.n_rays, cfg.grid, rays)
            xs.append(np.moveaxis(img[sl], -1, 0))
            ps.append(p_[None])
            ds.append(np.moveaxis(d_, -1, 0))
            if len(xs) >= limit:
                break
    if not xs:
        return None
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ps)), torch.from_numpy(np.stack(ds))
