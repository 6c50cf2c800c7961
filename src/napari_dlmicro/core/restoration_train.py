"""One training loop for Noise2Void and CARE, shaped for short runs.

``train_restoration`` is a job generator: it yields :class:`Progress` (with an
ETA), :class:`Metrics` (train and validation loss, learning rate) and, when a
preview region is given, :class:`Preview` snapshots of the denoised region
every few seconds. It returns a :class:`TrainResult` with the best model.

The learning rate warms up briefly, then follows a cosine down to 2% of its
start *over the budget* (wall-clock minutes or epochs), so a 3-minute run ends
on a low rate instead of swinging between checkpoints. The best model by
validation loss is written to ``save_to`` each time it improves, so a cancel
(or a crash) leaves the best model so far on disk; a run that spends its
budget ends with its last weights (``keep="auto"``), since late in a run the
validation loss is too noisy to rank checkpoints that differ so little. On a CPU the
thread count is re-measured as the run goes (:mod:`.cpu_tuning`): on a busy
machine one thread can train three times faster than two.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .cancel import NEVER, CancelToken
from .cpu_tuning import ThreadTuner
from .devices import (
    free_gpu_memory,
    is_out_of_memory,
    resolve_device,
    set_cpu_threads,
    training_autocast,
)
from .errors import UserError
from .events import Job, Metrics, Notice, Preview, ProgressClock
from .models import care, n2v
from .models.restoration import (
    RestorationModel,
    build_model,
    net_from_config,
    predict_tile,
    save_restoration,
)
from .restoration_data import (
    PatchSampler,
    channel_range,
    check_image,
    fit_patch,
    grid_patches,
    normalise,
    split_validation,
    to_samples,
)
from .tiling import pad_to_multiple
from .train import WeightAverage
from .train import lr_at as cosine_lr


def lr_at(fraction: float, base: float, warmup: float = 0.05, floor: float = 0.02) -> float:
    """The restoration schedule: the shared warm-up + cosine, decaying to 2 % of ``base``."""
    return cosine_lr(fraction, base, warmup, floor)


LEARNING_RATES = {"n2v": 1e-3, "care": 5e-4}  # where the schedule starts, per kind


@dataclass(frozen=True)
class TrainSettings:
    """Everything a restoration training run needs besides the data."""

    kind: str = "n2v"  # "n2v" | "care"
    axes: str | None = None  # axes of every input image; None guesses (YX, ZYX, ...)
    channels: str = "independent"  # "independent" | "joint"
    minutes: float | None = 3.0  # wall-clock budget; used when epochs is None
    epochs: int | None = None
    steps_per_epoch: int = 50
    patch: int = 64
    batch_size: int = 16
    val_fraction: float = 0.1
    # None: the kind's own (LEARNING_RATES). Measured, 3 minutes on the noisy sample, six runs each: N2V at 1e-3
    # 31.18-31.62 dB (mean 31.43), at 5e-4 31.22-31.57 (mean 31.38), at 1.5e-3 (three runs) mean 31.42; CARE at
    # 1e-3 0.13 dB below 5e-4 in a 1-minute pair
    learning_rate: float | None = None
    augment: bool = True
    strategy: str = "n2v2"  # N2V pixel replacement: "n2v" (random neighbour) or "n2v2" (median)
    # Measured on the noisy nuclei sample, 3 minutes on 2 CPU cores: a 16-filter U-Net of depth 3 runs 2.2x
    # more patches per second than 32 filters at depth 2 and ends 0.5 dB higher; masking more pixels gives
    # each step more to learn from: 2 % 30.8-30.9 dB, 5 % 31.3-31.4 dB (four runs), 10 % 31.1-31.6 dB (three
    # runs: no better on average, and less steady).
    mask_fraction: float = 0.05
    # replace masked pixels from unmasked neighbours only (see n2v.apply_mask). Measured, 3 minutes:
    # 31.35 and 31.57 dB sealed, 31.22-31.39 dB (three runs) without
    sealed: bool = True
    depth: int | None = None  # None: 3 for 2D; 2 for 3D, where every level also halves Z
    filters: int = 16
    device: str = "auto"
    seed: int = 0
    preview_every_s: float = 3.0
    # N2V2's network too (blur-pool, no top skip; needs strategy n2v2). Off by default: it learns
    # more slowly, and in a few minutes of training the plain U-Net denoised better.
    n2v2_net: bool = False
    # decay of an exponential moving average of the weights (0: off). Measured off by default:
    # at 0.98 it lagged the live weights by about 0.9 dB after 2 minutes (still learning fast)
    ema: float = 0.0
    # which weights a run ends with: "best" (lowest validation loss), "last", or "auto": the last when the
    # budget is spent (the schedule ends on a low rate), the best so far when cancelled. Measured, 3 minutes:
    # at the end of a run the validation loss on a few thousand masked pixels is mostly noise, and the
    # "best" checkpoint was 0.41 and 0.06 dB below the last weights in two paired runs
    keep: str = "auto"
    max_threads: int | None = None  # CPU threads at most (a GUI leaves a core to its event loop)
    # bf16 autocast on CPUs with native bf16 (AVX512-BF16 or AMX; CUDA uses it wherever supported), for all
    # but the last ``fp32_tail`` of the budget, which trains in full precision: the low-rate end of the
    # schedule makes the small, precise steps that bf16 rounds away. Measured, N2V 3 minutes on the noisy
    # sample, 2 CPU cores: fp32 throughout 31.18-31.62 dB (seven runs, mean 31.42) at about 180 patches/s;
    # bf16 with the last 30 % in fp32 31.58, 31.64 and 31.66 dB at 1.37x the patches/s; one run each with the
    # last 15 % in fp32, 31.52 dB, and bf16 throughout, 31.73 dB at 1.55x. The fp32 end costs a little speed
    # and keeps the final steps exact on images whose intensities need more than bf16's 8 bits of mantissa.
    # CARE, 1 minute on half the sample, held-out half: 30.56 and 30.55 dB, against 30.38 and 30.54 in fp32
    cpu_bf16: bool = True
    fp32_tail: float = 0.3

    @property
    def start_lr(self) -> float:
        """The learning rate the schedule starts from: ``learning_rate``, or the kind's default."""
        return float(self.learning_rate) if self.learning_rate else LEARNING_RATES.get(self.kind, 5e-4)

    def budget(self) -> tuple[str, float]:
        """``('time', seconds)`` or ``('steps', n)``."""
        if self.epochs is not None:
            if self.epochs < 1:
                raise UserError(f"epochs must be at least 1, not {self.epochs}", "give --epochs 1 or more")
            return "steps", float(self.epochs * self.steps_per_epoch)
        minutes = 3.0 if self.minutes is None else float(self.minutes)
        if minutes <= 0:
            raise UserError(f"the time budget must be positive, not {minutes} minutes", "give --minutes 0.5 or more")
        return "time", minutes * 60.0


@dataclass
class TrainResult:
    """The best model of a run and how the run went."""

    model: RestorationModel
    history: dict[str, list[float]] = field(default_factory=dict)
    best_val_loss: float = math.inf
    folder: Path | None = None
    stopped: str = "budget"  # "budget" | "cancelled"


def _prepare(images, targets, s: TrainSettings):
    """Samples (normalised), the model and the normalisation config."""
    if s.kind not in ("n2v", "care"):
        raise UserError(f"unknown training kind '{s.kind}'", "use n2v or care")
    images = [np.asarray(im) for im in images]
    if not images:
        raise UserError("no training images given", "give at least one image")
    notices = []
    for i, im in enumerate(images):
        n_bad = check_image(im, f"image {i + 1}" if len(images) > 1 else "the image")
        if n_bad:
            notices.append(f"{n_bad} NaN/infinite pixel(s) were filled with the median for training")
    samples, layout = [], None
    for im in images:
        part, layout = to_samples(im, s.axes, s.channels)
        samples += part
    tsamples = None
    if s.kind == "care":
        if targets is None:
            raise UserError("CARE needs target images", "pick a target layer, or a targets folder")
        targets = [np.asarray(t) for t in targets]
        care.check_pairs(images, targets)
        for t in targets:
            check_image(t, "a target image")
        tsamples = [x for t in targets for x in to_samples(t, s.axes, s.channels)[0]]
    ndim = len(layout.spatial)
    n_ch = samples[0].shape[0]
    lo, hi = channel_range(samples)
    norm: dict[str, Any] = {"percentiles": [1.0, 99.8], "input_mode": "dataset", "input": {"low": lo, "high": hi}}
    if s.kind == "care":
        from .normalize import percentile_range

        norm["input_mode"] = "per_image"
        tlo, thi = channel_range(tsamples)
        norm["target"] = {"low": tlo, "high": thi}
        xs = []
        for x in samples:
            a, b = percentile_range(x, 1.0, 99.8, axis=tuple(range(1, x.ndim)))
            xs.append(normalise(x, a.reshape(-1), b.reshape(-1)))
        samples, tsamples = xs, [normalise(t, tlo, thi) for t in tsamples]
    else:
        samples = [normalise(x, lo, hi) for x in samples]
    extra = {"normalization": norm, "channels": s.channels, "input_axes": layout.axes,
             "description": f"{'Noise2Void' if s.kind == 'n2v' else 'CARE'} {layout.spatial}, trained with napari-dlmicro"}
    model = build_model(s.kind, ndim, n_ch, s.depth or (3 if ndim == 2 else 2), s.filters, extra,
                        n2v2=s.kind == "n2v" and s.strategy == "n2v2" and s.n2v2_net)
    patch = fit_patch((s.patch,) * ndim, [x.shape[1:] for x in samples], model.div_by)
    return samples, tsamples, model, patch, notices


def train_restoration(images: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None = None,
                      settings: TrainSettings = TrainSettings(), token: CancelToken = NEVER,
                      save_to: str | Path | None = None,
                      preview: tuple[int, tuple[slice, ...]] | None = None) -> Job:
    """Train N2V (on ``images``) or CARE (``images`` -> ``targets``); a job generator.

    ``preview`` is ``(sample index, spatial region)``: that region of that
    sample (time point / channel, see ``restoration_data.to_samples``) is
    denoised and yielded as a ``Preview(kind="image")`` every few seconds.
    """
    s = settings
    mode, budget = s.budget()
    samples, tsamples, model, patch, notices = _prepare(images, targets, s)
    for text in notices:
        yield Notice(text, "warning")
    if patch[-1] < s.patch:
        yield Notice(f"the image is small: patches shrunk to {patch}", "warning")
    tr_x, tr_y, va_x, va_y = split_validation(samples, tsamples, s.val_fraction, patch)
    sampler = PatchSampler(tr_x, tr_y if s.kind == "care" else None, patch, s.augment, s.seed)
    device = resolve_device(s.device)
    tuner = None
    if device.type == "cpu":
        tuner = ThreadTuner()
        if s.max_threads:
            tuner = ThreadTuner(tuple(n for n in tuner.candidates if n <= s.max_threads) or (1,))
    if tuner is not None:
        set_cpu_threads()
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    val_x = torch.from_numpy(grid_patches(va_x, patch, 48)).to(device)
    val_y = torch.from_numpy(grid_patches(va_y, patch, 32)).to(device) if s.kind == "care" else None
    # validation masks more pixels than training: the masked loss is dominated by pixel noise, and a
    # noisy validation loss would pick an early checkpoint as "best" by chance
    val_in, val_mask = (n2v.n2v_batch(val_x, max(0.08, s.mask_fraction), s.strategy, generator=gen, sealed=s.sealed)
                        if s.kind == "n2v" else (val_x, None))
    net = model.net.to(device)
    fmt = torch.channels_last if len(patch) == 2 else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=s.start_lr)
    ema = WeightAverage(net, s.ema) if s.ema > 0 else None
    evalnet = ema.net if ema is not None else net  # validated, previewed and checkpointed
    model.config.update(patch=list(patch), training={k: v for k, v in vars(s).items() if k not in ("device",)})
    model.config["training"].update(device=str(device), learning_rate=s.start_lr)
    history: dict[str, list[float]] = {"step": [], "seconds": [], "train_loss": [], "val_loss": [], "lr": []}
    best, best_state, folder = math.inf, None, Path(save_to) if save_to else None
    clock = ProgressClock(int(budget), "training")
    start = time.perf_counter()
    last_event = last_preview = start
    step, losses, stopped = 0, [], "budget"
    yield clock.tick(0, "starting")

    def done_fraction() -> float:
        return (time.perf_counter() - start) / budget if mode == "time" else step / budget

    def validate() -> float:
        evalnet.eval()
        with torch.no_grad():
            out = evalnet(val_in.contiguous(memory_format=fmt))
            loss = n2v.masked_loss(out, val_x, val_mask) if s.kind == "n2v" else care.care_loss(out, val_y)
        net.train()
        return float(loss)

    try:
        while done_fraction() < 1.0:
            if token.cancelled:
                stopped = "cancelled"
                break
            lr = lr_at(done_fraction(), s.start_lr)
            for group in opt.param_groups:
                group["lr"] = lr
            if tuner is not None:
                tuner.before_step()
            xb, yb = sampler.batch(s.batch_size)
            x = torch.from_numpy(xb).to(device)
            low_precision = done_fraction() < 1.0 - s.fp32_tail
            if s.kind == "n2v":
                inp, mask = n2v.n2v_batch(x, s.mask_fraction, s.strategy, generator=gen, sealed=s.sealed)
                with training_autocast(device, s.cpu_bf16, low_precision):
                    out = net(inp.contiguous(memory_format=fmt))
                loss = n2v.masked_loss(out.float(), x, mask)
            else:
                with training_autocast(device, s.cpu_bf16, low_precision):
                    out = net(x.contiguous(memory_format=fmt))
                loss = care.care_loss(out.float(), torch.from_numpy(yb).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                ema.update(step)
            losses.append(loss.item())
            if tuner is not None:
                tuner.after_step()
            step += 1
            now = time.perf_counter()
            end_of_epoch = step % s.steps_per_epoch == 0 or done_fraction() >= 1.0
            if end_of_epoch:
                val = validate()
                for key, value in (("step", step), ("seconds", now - start), ("train_loss", float(np.mean(losses))),
                                   ("val_loss", val), ("lr", lr)):
                    history[key].append(float(value))
                losses = []
                if val < best or s.keep == "last":  # checkpoint before yielding: a cancel may stop us at the yield
                    best = min(val, best)
                    best_state = {k: v.detach().clone() for k, v in evalnet.state_dict().items()}
                    if folder is not None:
                        _checkpoint(model, best_state, history, best, folder)
                yield Metrics(step, {"train_loss": history["train_loss"][-1], "val_loss": val, "lr": lr})
            if now - last_event > 0.25 or end_of_epoch:
                last_event = now
                done = int(now - start) if mode == "time" else step
                yield clock.tick(min(done, int(budget)), f"step {step}, loss {losses[-1] if losses else val:.4g}")
            if preview is not None and now - last_preview > s.preview_every_s:
                last_preview = now
                yield _preview(RestorationModel(evalnet, model.config), samples, preview)
                net.train()
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        free_gpu_memory(device)
        raise UserError(f"ran out of memory on {device} with batch size {s.batch_size} and patch {s.patch}"
                        + (f"; the best model so far is saved in {folder}" if folder and best_state else ""),
                        "lower the batch size or the patch size, or use the CPU") from None
    if best_state is None:  # cancelled or budget over before the first validation
        best = validate()
        best_state = {k: v.detach().clone() for k, v in evalnet.state_dict().items()}
        history["step"].append(step), history["seconds"].append(time.perf_counter() - start)
        history["train_loss"].append(float(np.mean(losses)) if losses else best)
        history["val_loss"].append(best), history["lr"].append(0.0)
        yield Metrics(step, {"train_loss": history["train_loss"][-1], "val_loss": best, "lr": 0.0})
    if s.keep == "auto" and stopped == "budget" and history["step"] and history["step"][-1] == step:
        best_state = {k: v.detach().clone() for k, v in evalnet.state_dict().items()}  # validated last
        best = history["val_loss"][-1]
    net.load_state_dict(best_state)
    net.eval()
    if tuner is not None:
        set_cpu_threads()
    model.config.update(history=history, best_val_loss=best, steps=step, stopped=stopped,
                        seconds=time.perf_counter() - start)
    if folder is not None:
        save_restoration(model, folder)
    yield clock.tick(int(budget), "done")
    return TrainResult(model, history, best, folder, stopped)


def _checkpoint(model: RestorationModel, state: dict, history: dict, best: float, folder: Path) -> None:
    """Write the best weights so far (the live network keeps training)."""
    config = {**model.config, "history": {k: list(v) for k, v in history.items()},
              "best_val_loss": best, "stopped": "checkpoint"}
    snap = RestorationModel(net_from_config(config), config)
    snap.net.load_state_dict({k: v.cpu() for k, v in state.items()})
    save_restoration(snap, folder)


def _preview(model: RestorationModel, samples: list[np.ndarray], spec: tuple[int, tuple[slice, ...]]) -> Preview:
    """Denoise the preview region of one sample with the current weights."""
    index, region = spec
    crop = samples[min(index, len(samples) - 1)][(slice(None),) + tuple(region)]
    padded = pad_to_multiple(np.moveaxis(crop, 0, -1), model.div_by)
    out = predict_tile(model, np.moveaxis(padded, -1, 0))
    out = out[(slice(None),) + tuple(slice(0, n) for n in crop.shape[1:])]
    lo, hi = model.output_range(*model.input_range(crop))
    shape = (-1,) + (1,) * (out.ndim - 1)
    out = out * (np.asarray(hi) - np.asarray(lo)).reshape(shape) + np.asarray(lo).reshape(shape)
    return Preview(out[0] if out.shape[0] == 1 else out, tuple(region), kind="image")


def with_budget(settings: TrainSettings, minutes: float | None, epochs: int | None) -> TrainSettings:
    """``settings`` with the CLI's ``--minutes``/``--epochs`` applied."""
    return replace(settings, minutes=minutes if minutes is not None else settings.minutes, epochs=epochs)
