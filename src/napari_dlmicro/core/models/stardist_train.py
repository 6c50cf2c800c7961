"""Training a StarDist network from (image, labels) pairs.

Targets come from stardist's geometry (``star_dist`` for the ray lengths,
``edt_prob`` for the object probability); the losses are StarDist's: binary
cross-entropy on the probability, and the mean absolute ray error weighted by
that probability. Random patches with flips and 90° rotations; Adam with a
short warm-up then cosine decay to the end of the budget (steps or minutes),
which keeps short runs stable.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..cancel import NEVER, CancelToken
from ..errors import UserError
from ..events import Job, Metrics, ProgressClock
from ..nets.stardist_net import StarDistNet, StarDistNetConfig
from ..nets.unet import UNetConfig
from .stardist import StarDistSegmenter


@dataclass(frozen=True)
class StarDistTraining:
    """Settings of one training run."""

    n_rays: int = 32
    grid: int = 2
    depth: int = 3
    filters: int = 32
    patch: int = 128
    batch: int = 4
    lr: float = 1e-3
    steps: int = 400
    minutes: float | None = None
    seed: int = 0


def targets_2d(labels: np.ndarray, n_rays: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Probability (H/g, W/g) and ray lengths (H/g, W/g, R) for one label patch."""
    from stardist import edt_prob, star_dist

    prob = edt_prob(labels)[::grid, ::grid].astype(np.float32)
    dist = star_dist(labels, n_rays, grid=(grid, grid)).astype(np.float32)
    return prob, dist


def _random_patch(rng, image, labels, patch: int):
    h, w = labels.shape
    y = rng.integers(0, h - patch + 1)
    x = rng.integers(0, w - patch + 1)
    img, lab = image[y : y + patch, x : x + patch], labels[y : y + patch, x : x + patch]
    k = rng.integers(4)
    img, lab = np.rot90(img, k, (0, 1)), np.rot90(lab, k, (0, 1))
    if rng.random() < 0.5:
        img, lab = img[:, ::-1], lab[:, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(lab)


def stardist_loss(prob, dist, prob_t, dist_t, dist_weight: float = 0.2) -> torch.Tensor:
    """StarDist's loss: BCE on probability + prob-weighted mean absolute ray error."""
    bce = F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), prob_t)
    mae = (prob_t * (dist - dist_t).abs().mean(dim=1, keepdim=True)).sum() / prob_t.sum().clamp_min(1e-6)
    return bce + dist_weight * mae


def train_stardist_2d(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    settings: StarDistTraining = StarDistTraining(),
    token: CancelToken = NEVER,
    device: torch.device | None = None,
    name: str = "stardist",
) -> Job:
    """Train a 2D StarDist model; yields Progress and Metrics, returns the segmenter.

    ``images`` are normalised float arrays (Y, X) or (Y, X, C); ``masks`` label images.
    """
    s = settings
    device = device or torch.device("cpu")
    if len(images) != len(masks) or not images:
        raise UserError(f"{len(images)} images but {len(masks)} masks", "give one label image per image")
    images = [im[..., None] if im.ndim == 2 else im for im in images]
    for im, m in zip(images, masks):
        if im.shape[:2] != m.shape:
            raise UserError(f"image of shape {im.shape[:2]} and mask of shape {m.shape} differ",
                            "each mask must match its image pixel for pixel")
        if min(m.shape) < s.patch:
            raise UserError(f"patch size {s.patch} is larger than an image of {m.shape}", "choose a smaller patch size")
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    unet = UNetConfig(ndim=2, depth=s.depth, filters=s.filters, kernel=3, pool=(2, 2))
    cfg = StarDistNetConfig(ndim=2, n_channels=images[0].shape[-1], n_rays=s.n_rays, grid=(s.grid, s.grid), unet=unet)
    net = StarDistNet(cfg).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    budget_s = None if s.minutes is None else s.minutes * 60.0
    total = s.steps
    clock = ProgressClock(total, "training")
    start = time.perf_counter()
    step = 0
    while step < total:
        token.check()
        elapsed = time.perf_counter() - start
        frac = elapsed / budget_s if budget_s else step / total
        if budget_s and elapsed >= budget_s:
            break
        lr = s.lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for group in opt.param_groups:
            group["lr"] = lr
        xb, pb, db = [], [], []
        for _ in range(s.batch):
            i = rng.integers(len(images))
            img, lab = _random_patch(rng, images[i], masks[i], s.patch)
            p, d = targets_2d(lab, s.n_rays, s.grid)
            xb.append(np.moveaxis(img, -1, 0))
            pb.append(p[None])
            db.append(np.moveaxis(d, -1, 0))
        x = torch.from_numpy(np.stack(xb).astype(np.float32)).to(device)
        prob_t = torch.from_numpy(np.stack(pb)).to(device)
        dist_t = torch.from_numpy(np.stack(db)).to(device)
        prob, dist = net(x)
        loss = stardist_loss(prob, dist, prob_t, dist_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if budget_s:
            total = max(step + 1, int(step / max(time.perf_counter() - start, 1e-6) * budget_s))
            clock.total = total
        if step % 10 == 0 or step == total:
            yield Metrics(step, {"loss": float(loss.detach()), "lr": lr})
            yield clock.tick(step)
    return StarDistSegmenter(net.eval(), name=name, device=device)
