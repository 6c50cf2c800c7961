"""Fine-tuning Cellpose-SAM on a training set, on the one training loop (:mod:`...training.fit`).

One step is cellpose's own recipe for one batch: flows computed once from the
masks (``dynamics.labels_to_flows``), a random 256x256 crop turned and zoomed
by ``transforms.random_rotate_and_resize``, cellpose's segmentation loss
(flows and cell probability), AdamW with weight decay. The learning rate
follows the shared warm-up and cosine over the budget, from 1e-5 (cellpose's
own default for Cellpose-SAM: a rate a hundred times higher wrecks the
pretrained weights). Each validation is the loss on the held-out images; the
finished model is scored by F1 and AP at IoU 0.5 on them.

The model folder holds ``config.json`` (kind ``cellpose``) and
``cellpose_weights.pt``, a plain state dict that loads with
``weights_only=True``. Meant for a GPU: on a CPU one step takes about a minute,
and a cancel stops it inside the network (:func:`...runtime.cancel.cancellable_forward`).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from napari_dlmicro.core.data.normalize import normalized
from napari_dlmicro.core.data.training_sets import training_split
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.segmentation import score_many
from napari_dlmicro.core.io.atomic import write_folder_atomically
from napari_dlmicro.core.models.cellpose.segmenter import CellposeSegmenter, load_cellpose
from napari_dlmicro.core.models.cellpose.settings import CellposeTraining
from napari_dlmicro.core.models.cellpose.tiling import TILE
from napari_dlmicro.core.models.cellpose.weights import cellpose_module
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, call_abandoning, cancellable_forward
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import Job, Level, Metric, Notice
from napari_dlmicro.core.training.budget import Budget
from napari_dlmicro.core.training.chunked_optimizer import ChunkedOptimizer
from napari_dlmicro.core.training.fit import Trainer, fit

WEIGHTS = "cellpose_weights.pt"
CPU_SECONDS_PER_STEP = 60.0  # ViT-L forward + backward on a 256x256 crop, 2-core CPU (order of magnitude)


def cpu_cost_message(n_images: int, epochs: int) -> str:
    """What fine-tuning will cost on this CPU, in words."""
    minutes = n_images * epochs * CPU_SECONDS_PER_STEP / 60
    return (f"Cellpose-SAM fine-tuning on the CPU: about {CPU_SECONDS_PER_STEP:.0f} s a step, "
            f"{n_images} step(s) an epoch, so {epochs} epoch(s) take about {minutes:.0f} min. A GPU is ~100x faster")


def _three_channels(image: np.ndarray, mask_ndim: int) -> np.ndarray:
    """(3, Y, X) float32: cellpose's layout, missing channels zero."""
    x = normalized(image, mask_ndim)
    x = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)[:3]
    if x.shape[0] < 3:
        x = np.concatenate([x, np.zeros((3 - x.shape[0], *x.shape[1:]), np.float32)])
    return np.ascontiguousarray(x, np.float32)


def _loss(lbl, y, device):
    """cellpose's own segmentation loss (flows and cell probability; a private function of cellpose 4)."""
    return cellpose_module("train")._loss_fn_seg(lbl, y, device)


def _flows(masks: Sequence[np.ndarray], device: torch.device) -> list[np.ndarray]:
    flows = cellpose_module("dynamics").labels_to_flows([np.asarray(m, np.int32) for m in masks], device=device)
    return [f[1:] for f in flows]


class CellposeTrainer(Trainer):
    """Cellpose-SAM fine-tuning: a step is one batch of turned and zoomed 256x256 crops."""

    kind = "cellpose"
    warmup, lr_floor = 0.1, 0.1
    checkpoint_every_s = 600.0  # the weights are 1.2 GB: checkpoints are rare

    def __init__(self, base: CellposeSegmenter, train: Sequence, val: Sequence, s: CellposeTraining,
                 name: str, source: str, token: CancelToken) -> None:
        utils = cellpose_module("utils")
        for p in list(train) + list(val):
            if p.mask.ndim != 2:
                raise UserError("Cellpose fine-tuning here takes 2D annotations", "annotate single planes (YX)")
        self.base, self.s, self.name, self.source, self.token = base, s, name, source, token
        self.net = base.model.net
        self.device = base.device
        self.lr = s.lr
        self.x = [_three_channels(p.image, 2) for p in train]
        self.vx = [_three_channels(p.image, 2) for p in val]
        self.y, self.vy = _flows([p.mask for p in train], self.device), _flows([p.mask for p in val], self.device)
        self.val = list(val)
        diameters = np.array([max(utils.diameters(np.asarray(p.mask))[0], 5.0) for p in train])
        self.net.diam_labels.data = torch.tensor([float(diameters.mean())], device=self.device)
        self.steps_per_epoch = max(1, -(-len(self.x) // s.batch))
        self.rng = np.random.default_rng(s.seed)
        self.continued = True  # fine-tuning starts from trained weights: saved even before a step

    def begin(self) -> None:
        self.net.dtype = torch.float32  # cellpose trains in fp32 whatever it predicts in
        # in parts, so that a cancel waits for one part of an update, not all 1.2 GB of it
        self.optimizer = ChunkedOptimizer(self.net.parameters(), lambda part: torch.optim.AdamW(
            part, lr=self.s.lr, weight_decay=self.s.weight_decay), self.token)
        self._hooks = cancellable_forward(self.net, self.token, self.check_time)
        self._hooks.__enter__()

    def end(self) -> None:
        self._hooks.__exit__(None, None, None)
        self.net.eval()

    def _crops(self, images, flows, idx) -> tuple[torch.Tensor, torch.Tensor]:
        x, lbl = cellpose_module("transforms").random_rotate_and_resize(
            [images[i] for i in idx], lbls=[flows[i] for i in idx], rescale=np.ones(len(idx), np.float32),
            bsize=TILE, scale_range=self.s.scale_range, device=self.device,
        )[:2]
        return x, lbl

    def step(self, fraction: float) -> float:
        idx = self.rng.choice(len(self.x), size=min(self.s.batch, len(self.x)), replace=False)
        x, lbl = self._crops(self.x, self.y, idx)
        self.net.train()
        loss = _loss(lbl, self.net(x)[0], self.device)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def validate(self, token: CancelToken) -> dict[str, float]:
        if not self.vx:
            return {}
        self.net.eval()
        losses = []
        with torch.no_grad():
            for i in range(len(self.vx)):
                token.check()
                x, lbl = self._crops(self.vx, self.vy, [i])
                losses.append(float(_loss(lbl, self.net(x)[0], self.device).item()))
        return {Metric.VAL_LOSS: float(np.mean(losses))}

    def rank(self, row: dict[str, float]) -> tuple:
        return (-row[Metric.VAL_LOSS],) if Metric.VAL_LOSS in row else (row[Metric.STEP],)

    def weights(self) -> dict:
        return self.net.state_dict()

    def load_weights(self, state: dict) -> None:
        self.net.load_state_dict(state)

    def finish(self, token: CancelToken, history) -> Job:
        """F1 and AP at IoU 0.5 of the fine-tuned network on the validation pairs."""
        if not self.val or (self.budget is not None and self.budget.timed and self.budget.done(0)):
            return {}  # scoring takes minutes on a CPU: not after the budget is spent
        yield Notice(f"scoring the fine-tuned model on {len(self.val)} validation image(s)")
        preds = []
        for p in self.val:
            x = normalized(p.image, p.mask.ndim)
            x = x[..., None] if x.ndim == p.mask.ndim else x
            preds.append(np.asarray((yield from self.base.segment(x, {}, token))))
        s = score_many(preds, [p.mask for p in self.val], (0.5,))[0]
        return {Metric.F1: s.f1, Metric.AP: s.ap}

    def save(self, folder: Path, history, best, info) -> None:
        save_cellpose_folder(folder, self.net, {"name": self.name, "base": self.source, "history": history,
                                                 "best": best, "training": {**asdict(self.s), **info}})

    def model(self) -> CellposeSegmenter:
        return self.base


def save_cellpose_folder(folder: Path, net: torch.nn.Module, config: dict) -> Path:
    """Write ``config.json`` and the state dict atomically into ``folder``."""
    def write(tmp: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp / WEIGHTS)
        (tmp / "config.json").write_text(json.dumps({"kind": "cellpose", "weights": WEIGHTS, **config}, indent=2,
                                                    default=str))

    return write_folder_atomically(Path(folder), write)


def train_cellpose(train: Sequence, val: Sequence, settings: CellposeTraining = CellposeTraining(),
                   token: CancelToken = NEVER, device: str | torch.device = "auto", name: str = "cellpose",
                   save_to: str | Path | None = None, init: str | None = None) -> Job:
    """Fine-tune Cellpose-SAM (``init`` or the ``cpsam`` generalist) on ``train``; returns a :class:`TrainResult`."""
    if save_to is None:
        raise UserError("no output folder for the fine-tuned Cellpose model", "give -o MODELDIR")
    device = device if isinstance(device, torch.device) else resolve_device(device)
    source = str(init or "cpsam")
    # loading the ViT-L and computing the flows take seconds: a cancel does not wait for either
    base = call_abandoning(load_cellpose, source.split(":", 1)[1] if source.startswith("cellpose:") else source,
                           device, token=token)
    trainer = call_abandoning(CellposeTrainer, base, train, val, settings, name, source, token, token=token)
    budget = Budget(minutes=settings.minutes, epochs=settings.epochs, steps_per_epoch=trainer.steps_per_epoch)
    if device.type == "cpu":
        yield Notice(cpu_cost_message(trainer.steps_per_epoch, settings.epochs or 1), Level.WARNING)
    return (yield from fit(trainer, budget, token, save_to))


def train_kind(pairs: Sequence, settings: CellposeTraining, token: CancelToken = NEVER, *, device: str = "auto",
               name: str = "cellpose", save_to: str | Path | None = None, init: str | None = None,
               preview=None) -> Job:
    """Cellpose-SAM fine-tuning from a training set (:class:`Pair` list): masks cleaned, validation held out."""
    train, val, notes = training_split(pairs, settings.val_fraction, settings.seed)
    for note in notes:
        yield Notice(note)
    return (yield from train_cellpose(train, val, settings, token, device, name, save_to, init))
