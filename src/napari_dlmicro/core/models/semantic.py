"""Semantic segmentation: a U-Net that gives every pixel one of K classes.

Masks are class maps (0 = background, 1..K-1 the classes). The network is our
U-Net with a 1x1 head to K logits, trained with cross-entropy on random
augmented patches; validation reports the loss, pixel accuracy and the mean
IoU over the foreground classes. The model folder holds ``config.json``
(kind ``semantic``) and ``weights.safetensors``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cancel import CancelToken
from ..devices import resolve_device, set_cpu_threads
from ..errors import Cancelled, UserError
from ..events import Job, Metrics, Notice, ProgressClock
from ..nets.unet import UNet, UNetConfig
from ..tiling import pad_to_multiple
from ..train import (
    BestKeeper,
    Budget,
    augment_pair,
    avoid_triton_crash,
    lr_at,
    parse_augment,
    random_crop,
)
from .folder import load_safetensors, read_config, save_model_folder


class SemanticNet(nn.Module):
    """U-Net body + 1x1 convolution to ``n_classes`` logits."""

    def __init__(self, unet: UNetConfig, n_classes: int) -> None:
        super().__init__()
        self.unet_config, self.n_classes = unet, n_classes
        self.body = UNet(unet)
        self.head = (nn.Conv2d if unet.ndim == 2 else nn.Conv3d)(unet.filters, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass
class SemanticModel:
    """A trained semantic network and its normalisation-free prediction."""

    net: SemanticNet
    name: str = "semantic"

    @torch.inference_mode()
    def predict(self, image: np.ndarray) -> np.ndarray:
        """Class map for one normalised image (spatial..., C)."""
        shape = image.shape[:-1]
        x = pad_to_multiple(np.asarray(image, np.float32), self.net.unet_config.div_by)
        t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)[None]))
        dev = next(self.net.parameters()).device
        logits = self.net.eval()(t.to(dev))[0].argmax(0).cpu().numpy()
        return logits[tuple(slice(0, n) for n in shape)].astype(np.uint8)


@dataclass
class SemanticTrainResult:
    model: SemanticModel
    folder: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)


def class_scores(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> dict[str, float]:
    """Pixel accuracy and mean IoU over the foreground classes present."""
    ious = []
    for k in range(1, n_classes):
        a, b = pred == k, truth == k
        union = np.count_nonzero(a | b)
        if union:
            ious.append(np.count_nonzero(a & b) / union)
    return {"accuracy": float(np.mean(pred == truth)), "mean_iou": float(np.mean(ious)) if ious else 0.0}


def load_semantic(folder: Path, device: torch.device | None = None) -> SemanticModel:
    """Load a semantic model folder."""
    cfg = read_config(folder)
    if cfg.get("kind") != "semantic":
        raise UserError(f"'{Path(folder).name}' is not a semantic segmentation model", "pick a folder trained as 'semantic'")
    net = SemanticNet(UNetConfig.from_dict(cfg["unet"]), int(cfg["n_classes"]))
    load_safetensors(net, folder)
    return SemanticModel(net.to(device or torch.device("cpu")), cfg.get("name", Path(folder).name))


def train_semantic(train: Sequence, val: Sequence, spec, token: CancelToken) -> Job:
    """Train a U-Net on class maps; yields Progress/Metrics; returns a :class:`SemanticTrainResult`."""
    from ..train_segmentation import normalized

    ndim = train[0].mask.ndim
    n_classes = int(max(max(int(p.mask.max()) for p in list(train) + list(val)) + 1, 2))
    if n_classes > 64:
        raise UserError(f"the masks hold {n_classes - 1} classes: these look like object ids, not classes",
                        "train StarDist or Cellpose for objects; semantic masks hold a few class values")
    x = [normalized(p.image, ndim) for p in train]
    x = [im[..., None] if im.ndim == ndim else im for im in x]
    vx = [normalized(p.image, ndim) for p in val]
    vx = [im[..., None] if im.ndim == ndim else im for im in vx]
    y, vy = [p.mask.astype(np.int64) for p in train], [p.mask.astype(np.int64) for p in val]
    unet = UNetConfig(ndim=ndim, in_channels=x[0].shape[-1], depth=spec.extra.get("depth", 3),
                      filters=spec.extra.get("filters", 32), pool=(2,) * ndim)
    patch = (spec.patch,) * ndim
    if any(min(m.shape[d] for m in y) < spec.patch for d in range(ndim)):
        raise UserError(f"patch size {spec.patch} is larger than the smallest training image", "choose a smaller patch")
    device = resolve_device(spec.device)
    set_cpu_threads(spec.extra.get("threads"))  # the dock leaves a core to napari
    torch.manual_seed(spec.seed)
    net = SemanticNet(unet, n_classes).to(device)
    model = SemanticModel(net, spec.name or "semantic")
    avoid_triton_crash()
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
    kinds = parse_augment(spec.augment)
    rng = np.random.default_rng(spec.seed)
    epoch = max(10, -(-sum(m.size for m in y) // (spec.batch * int(np.prod(patch)))))
    budget = Budget(steps=(spec.epochs or 10) * epoch if not spec.minutes else None, minutes=spec.minutes)
    history: list[dict[str, float]] = []

    def save() -> None:
        if spec.out is not None:
            save_model_folder(Path(spec.out), {"kind": "semantic", "name": model.name, "unet": unet.to_dict(),
                                               "n_classes": n_classes, "history": history, "axes": "YXC"}, net)

    keeper = BestKeeper(save)
    clock = ProgressClock(budget.total_steps(0), "training")
    step = 0
    try:
        while not budget.done(step):
            token.check()
            for g in opt.param_groups:
                g["lr"] = lr_at(budget.fraction(step), spec.lr)
            xb, yb = [], []
            for _ in range(spec.batch):
                i = int(rng.integers(len(x)))
                im, lab = augment_pair(rng, *random_crop(rng, x[i], y[i], patch, kinds=kinds), kinds)
                xb.append(np.moveaxis(im, -1, 0))
                yb.append(lab)
            loss = F.cross_entropy(net(torch.from_numpy(np.stack(xb)).to(device)), torch.from_numpy(np.stack(yb)).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % 10 == 0:
                clock.total = budget.total_steps(step)
                yield clock.tick(step, f"step {step}, loss {float(loss):.3f}")
            if step % epoch == 0 and vx:
                row = _validate(model, vx, vy, n_classes, float(loss), step, budget.elapsed(), device)
                history.append(row)
                yield Metrics(step, row)
                keeper.offer((row["mean_iou"], -row["val_loss"]), net.state_dict(), step)
    except Cancelled:
        yield Notice(f"training stopped at step {step}: keeping the best weights so far")
    if keeper.state is not None:
        net.load_state_dict(keeper.state)
    keeper._dirty = spec.out is not None
    keeper.flush(force=True)
    best = next((r for r in history if r["step"] == keeper.step), {})
    return SemanticTrainResult(model, Path(spec.out) if spec.out else None, history, dict(best))


def _validate(model, vx, vy, n_classes, train_loss, step, elapsed, device) -> dict[str, float]:
    preds, losses = [], []
    with torch.inference_mode():
        for im, lab in zip(vx, vy):
            div = model.net.unet_config.div_by
            padded = pad_to_multiple(im, div)
            logits = model.net.eval()(torch.from_numpy(np.ascontiguousarray(np.moveaxis(padded, -1, 0)[None])).to(device))
            logits = logits[(slice(None), slice(None)) + tuple(slice(0, n) for n in lab.shape)]
            losses.append(float(F.cross_entropy(logits, torch.from_numpy(lab[None]).to(device))))
            preds.append(logits[0].argmax(0).cpu().numpy())
    model.net.train()
    scores = class_scores(np.concatenate([p.ravel() for p in preds]), np.concatenate([v.ravel() for v in vy]), n_classes)
    return {"step": float(step), "train_loss": train_loss, "val_loss": float(np.mean(losses)), "time_s": elapsed, **scores}
