"""Fine-tuning Cellpose-SAM on a training set, through ``cellpose.train.train_seg``.

cellpose's own loop does the work (flows from the masks, its augmentation,
AdamW). It is one blocking call, so it runs through :func:`run_blocking`:
a forward hook on the network reports every training batch, checks the
cancel token and the time budget, and unwinds the call when either says
stop. The weights reached so far are then saved (atomically) as a model
folder: ``config.json`` (kind ``cellpose``) plus ``cellpose_weights.pt``, a
plain state dict that loads with ``weights_only=True``. Afterwards the
model is scored (F1/AP at IoU 0.5) on the validation pairs.

Meant for a GPU: on a CPU one 256x256 step takes about a minute.
"""
from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cancel import CancelToken, run_blocking
from ..devices import resolve_device
from ..errors import Cancelled, UserError
from ..events import Job, Metrics, Notice, Progress
from .folder import write_folder_atomically

WEIGHTS = "cellpose_weights.pt"
CPU_SECONDS_PER_STEP = 60.0  # ViT-L forward + backward on a 256x256 crop, 2-core CPU (order of magnitude)


class _OutOfTime(Exception):
    """Raised inside train_seg when the time budget is spent."""


@dataclass
class CellposeTrainResult:
    """Fine-tuned weights, their folder, losses and validation scores."""

    folder: Path
    weights: Path
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False


def cpu_cost_message(n_images: int, epochs: int) -> str:
    """What fine-tuning will cost on this CPU, in words."""
    minutes = n_images * epochs * CPU_SECONDS_PER_STEP / 60
    return (f"Cellpose-SAM fine-tuning on the CPU: about {CPU_SECONDS_PER_STEP:.0f} s a step, "
            f"{n_images} step(s) an epoch, so {epochs} epoch(s) take about {minutes:.0f} min. A GPU is ~100x faster")


def _images(pairs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    imgs, labs = [], []
    for p in pairs:
        if p.mask.ndim != 2:
            raise UserError("Cellpose fine-tuning here takes 2D annotations", "annotate single planes (YX)")
        imgs.append(np.asarray(p.image, np.float32))
        labs.append(np.asarray(p.mask, np.int32))
    return imgs, labs


def save_cellpose_folder(folder: Path, net: torch.nn.Module, config: dict[str, Any]) -> Path:
    """Write ``config.json`` and the state dict atomically into ``folder``."""
    def write(tmp: Path) -> None:
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, tmp / WEIGHTS)
        (tmp / "config.json").write_text(json.dumps({"kind": "cellpose", "weights": WEIGHTS, **config}, indent=2, default=str))

    folder = write_folder_atomically(Path(folder), write)
    return folder


def train_cellpose(train: Sequence, val: Sequence, spec, token: CancelToken) -> Job:
    """Fine-tune Cellpose-SAM (``spec.init`` or the ``cpsam`` generalist) on ``train``; score on ``val``."""
    from .cellpose import load_cellpose
    from .cellpose_weights import import_cellpose

    if spec.out is None:
        raise UserError("no output folder for the fine-tuned Cellpose model", "give -o MODELDIR")
    import_cellpose()
    from cellpose import train as cp_train

    device = resolve_device(spec.device)
    x, y = _images(train)
    vx, vy = _images(val)
    epochs = spec.epochs or 100
    if device.type == "cpu":
        yield Notice(cpu_cost_message(len(x), epochs if not spec.minutes else 1), "warning")
    init = str(spec.init or "cpsam")
    base = load_cellpose(init.split(":", 1)[1] if init.startswith("cellpose:") else init, device)
    net = base.model.net
    budget_s = spec.minutes * 60 if spec.minutes else None
    start = time.perf_counter()
    total = epochs * max(1, -(-len(x) // spec.batch))
    state = {"done": 0}

    def work(emit):
        def hook(module, args, output):
            if not module.training:
                return
            state["done"] += 1
            elapsed = time.perf_counter() - start
            emit(Progress(state["done"], total, f"batch {state['done']}/{total}", None, elapsed))
            if budget_s is not None and elapsed >= budget_s:
                raise _OutOfTime()

        handle = net.register_forward_hook(hook)
        try:
            with tempfile.TemporaryDirectory() as scratch:
                return cp_train.train_seg(
                    net, train_data=x, train_labels=y, test_data=vx or None, test_labels=vy or None,
                    batch_size=spec.batch, learning_rate=spec.lr, n_epochs=epochs, bsize=256,  # cpsam trains on 256x256 only
                    save_path=scratch, save_every=10**9, min_train_masks=1, model_name="finetune")
        finally:
            handle.remove()

    stopped = False
    history: list[dict[str, float]] = []
    try:
        out = yield from run_blocking(work, token)
        _, train_losses, test_losses = out
        history = [{"epoch": float(i + 1), "train_loss": float(a), "val_loss": float(b)}
                   for i, (a, b) in enumerate(zip(train_losses, test_losses))]
        for row in history:
            yield Metrics(int(row["epoch"]), row)
    except (_OutOfTime, Cancelled):
        stopped = True
        yield Notice(f"fine-tuning stopped after {state['done']} batch(es); saving the weights reached")
    folder = save_cellpose_folder(Path(spec.out), net, {
        "name": spec.name or Path(spec.out).name, "base": str(spec.init or "cpsam"), "history": history,
        "training": {"epochs": epochs, "lr": spec.lr, "batch": spec.batch, "patch": spec.patch,
                     "batches_done": state["done"], "stopped_early": stopped}})
    best: dict[str, float] = {}
    if vx and not token.cancelled:
        best = yield from _validate(folder / WEIGHTS, val, device, token)
        yield Metrics(state["done"], best)
    return CellposeTrainResult(folder, folder / WEIGHTS, history, best, stopped)


def _validate(weights: Path, val: Sequence, device: torch.device, token: CancelToken) -> Job:
    """F1 and AP at IoU 0.5 of the fine-tuned model on the validation pairs."""
    from ..metrics import score_many
    from ..train_segmentation import normalized
    from .cellpose import load_cellpose

    model = load_cellpose(weights, device)
    preds = []
    for p in val:
        x = normalized(p.image, p.mask.ndim)
        x = x[..., None] if x.ndim == p.mask.ndim else x
        labels = yield from model.segment(x, {}, token)
        preds.append(np.asarray(labels))
    s = score_many(preds, [p.mask for p in val], (0.5,))[0]
    return {"f1": s.f1, "ap": s.ap}
