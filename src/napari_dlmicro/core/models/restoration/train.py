"""Noise2Void and CARE on the one training loop (:mod:`...training.fit`), shaped for short runs.

The learning rate warms up briefly, then follows a cosine down to 2 % of its
start over the budget (wall-clock minutes or epochs), so a 3-minute run ends
on a low rate instead of swinging between checkpoints. The best model by
validation loss is checkpointed each time it improves, so a cancel (or a
crash) leaves the best model so far on disk; a run that spends its budget ends
with its last weights (``keep="auto"``), since late in a run the validation
loss is too noisy to rank checkpoints that differ so little. On a CPU the
thread count is re-measured as the run goes (:mod:`...runtime.threads`): on a
busy machine one thread can train three times faster than two. With a
``preview`` region, that region is denoised with the current weights every few
seconds and yielded as an image :class:`Preview`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from napari_dlmicro.core.data import renoise
from napari_dlmicro.core.data.samples import PatchSampler, grid_patches, split_validation
from napari_dlmicro.core.data.tiling import pad_to_multiple
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.restoration import care, n2v
from napari_dlmicro.core.models.restoration.network import RestorationModel, predict_tile, save_restoration
from napari_dlmicro.core.models.restoration.prepare import Prepared, prepare_training
from napari_dlmicro.core.models.restoration.settings import LEARNING_RATES, TrainSettings  # noqa: F401 - API
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, call_abandoning
from napari_dlmicro.core.runtime.devices import resolve_device, training_autocast
from napari_dlmicro.core.runtime.events import Job, Level, Metric, Notice, Preview, PreviewKind
from napari_dlmicro.core.runtime.oom import is_out_of_memory
from napari_dlmicro.core.runtime.threads import ThreadTuner, set_cpu_threads
from napari_dlmicro.core.training.fit import Trainer, fit
from napari_dlmicro.core.training.schedule import warmup_cosine


def lr_at(fraction: float, base: float, warmup: float = 0.05, floor: float = 0.02) -> float:
    """The restoration schedule: the shared warm-up + cosine, decaying to 2 % of ``base``."""
    return warmup_cosine(fraction, base, warmup, floor)


class RestorationTrainer(Trainer):
    """N2V (masked pixels of the input itself) or CARE (input -> target) on the training loop."""

    warmup, lr_floor = 0.05, 0.02
    checkpoint_every_s = 0.0  # every improvement is written at once: a cancel keeps it

    def __init__(self, s: TrainSettings, data: Prepared, preview: tuple[int, tuple[slice, ...]] | None) -> None:
        samples, tsamples, model, patch = data.samples, data.targets, data.model, data.patch
        self.s, self.model_, self.patch, self.samples, self.back = s, model, patch, samples, data.back
        self.kind = s.kind
        self.lr = s.start_lr
        self.steps_per_epoch = s.steps_per_epoch
        self.keep_last_at_budget = s.keep == "auto"
        self.preview_every_s = s.preview_every_s if preview is not None else None
        self._preview = preview
        self.device = resolve_device(s.device)
        care_kind = s.kind == "care"
        scale = model.factors
        tr_x, tr_y, va_x, va_y = split_validation(samples, tsamples, s.val_fraction, patch, scale)
        self.sampler = PatchSampler(tr_x, tr_y if care_kind else None, patch, s.augment, s.seed, scale,
                                    focus=s.focus if care_kind else 0.0,
                                    intensity=care_kind and s.intensity_augment,
                                    renoise=(s.renoise or 0.0) if care_kind else 0.0)
        self.tuner = None
        if self.device.type == "cpu":
            tuner = ThreadTuner()
            self.tuner = tuner if not s.max_threads else ThreadTuner(
                tuple(n for n in tuner.candidates if n <= s.max_threads) or (1,))
        torch.manual_seed(s.seed)
        self.gen = torch.Generator().manual_seed(s.seed)
        self.val_x = torch.from_numpy(grid_patches(va_x, patch, 48)).to(self.device)
        self.val_y = (torch.from_numpy(grid_patches(va_y, patch, 48, scale)).to(self.device) if care_kind
                      else None)
        # validation masks more pixels than training: the masked loss is dominated by pixel noise, and a
        # noisy validation loss would pick an early checkpoint as "best" by chance
        self.val_in, self.val_mask = (
            n2v.n2v_batch(self.val_x, max(0.08, s.mask_fraction), s.strategy, generator=self.gen, sealed=s.sealed)
            if s.kind == "n2v" else (self.val_x, None))
        self.net = model.net.to(self.device)
        self.fmt = torch.channels_last if len(patch) == 2 else torch.contiguous_format
        self.net = self.net.to(memory_format=self.fmt)
        model.config.update(patch=list(patch), training=s.saved())
        model.config["training"].update(device=str(self.device), learning_rate=self.lr)

    def begin(self) -> None:
        if self.tuner is not None:
            set_cpu_threads()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        self.net.train()

    def end(self) -> None:
        self.net.eval()
        if self.tuner is not None:
            set_cpu_threads()

    def step(self, fraction: float) -> float:
        s = self.s
        if self.tuner is not None:
            self.tuner.before_step()
        xb, yb = self.sampler.batch(s.batch_size)
        x = torch.from_numpy(xb).to(self.device)
        low_precision = fraction < 1.0 - s.fp32_tail
        try:
            if s.kind == "n2v":
                inp, mask = n2v.n2v_batch(x, s.mask_fraction, s.strategy, generator=self.gen, sealed=s.sealed)
                with training_autocast(self.device, s.cpu_bf16, low_precision):
                    out = self.net(inp.contiguous(memory_format=self.fmt))
                loss = n2v.masked_loss(out.float(), x, mask)
            else:
                with training_autocast(self.device, s.cpu_bf16, low_precision):
                    out = self.net(x.contiguous(memory_format=self.fmt))
                loss = care.care_loss(out.float(), torch.from_numpy(yb).to(self.device), s.loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            raise UserError(f"ran out of memory on {self.device} with batch size {s.batch_size} and patch {s.patch}",
                            "lower the batch size or the patch size, or use the CPU") from None
        if self.tuner is not None:
            self.tuner.after_step()
        return loss.item()

    def validate(self, token: CancelToken) -> dict[str, float]:
        self.net.eval()
        with torch.no_grad():
            out = self.net(self.val_in.contiguous(memory_format=self.fmt))
            loss = (n2v.masked_loss(out, self.val_x, self.val_mask) if self.s.kind == "n2v"
                    else care.care_loss(out, self.val_y, self.s.loss))
        self.net.train()
        return {Metric.VAL_LOSS: float(loss)}

    def rank(self, row: dict[str, float]) -> tuple:
        if self.s.keep == "last":
            return (row[Metric.STEP],)
        return (-row[Metric.VAL_LOSS],)

    def weights(self) -> dict:
        return self.net.state_dict()

    def load_weights(self, state: dict) -> None:
        self.net.load_state_dict(state)

    def save(self, folder: Path, history, best, info) -> None:
        self.model_.config.update(history=history, best_val_loss=best.get(Metric.VAL_LOSS), **info)
        save_restoration(self.model_, folder)

    def model(self) -> RestorationModel:
        return self.model_

    def preview(self) -> Preview | None:
        index, region = self._preview
        index = min(index, len(self.samples) - 1)
        out = _denoise_crop(self.model_, self.samples[index], self.back[index], region)
        self.net.train()
        return out


def train_restoration(images: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None = None,
                      settings: TrainSettings = TrainSettings(), token: CancelToken = NEVER,
                      save_to: str | Path | None = None,
                      preview: tuple[int, tuple[slice, ...]] | None = None,
                      names: Sequence[str] | None = None) -> Job:
    """Train N2V (on ``images``) or CARE (``images`` -> ``targets``); returns a :class:`TrainResult`.

    ``preview`` is ``(sample index, spatial region)``: that region of that
    sample (time point / channel, see :func:`...data.samples.to_samples`) is
    denoised and yielded as an image :class:`Preview` every few seconds (for
    an upsampling CARE model, the region of the larger output). ``names``
    name the images in messages about bad pairs.
    """
    s = settings
    data = prepare_training(images, targets, s, names)
    for text in data.notices:
        yield Notice(text, Level.WARNING)
    if s.kind == "care" and s.renoise is None:
        # about a second per 4 megapixels: a cancel does not wait for it
        share, why = call_abandoning(renoise.auto_share, data.samples, data.targets, data.model.factors, token=token)
        s = replace(s, renoise=share)
        yield Notice(why)
    if data.patch[-1] * data.model.factors[-1] < s.patch:
        yield Notice(f"the image is small: patches shrunk to {data.patch}", Level.WARNING)
    trainer = call_abandoning(RestorationTrainer, s, data, preview, token=token)
    return (yield from fit(trainer, s.budget(), token, save_to))


def _denoise_crop(model: RestorationModel, sample: np.ndarray, back: tuple[np.ndarray, np.ndarray],
                  region: tuple[slice, ...]) -> Preview:
    """The preview region of one (normalised) training sample, restored with the current weights.

    ``back`` takes the output to the target's units. For an upsampling model
    the preview covers the same region of the larger output, in its pixels.
    """
    crop = sample[(slice(None),) + tuple(region)]
    padded = pad_to_multiple(np.moveaxis(crop, 0, -1), model.div_by)
    out = predict_tile(model, np.moveaxis(padded, -1, 0))
    factors = model.factors
    out = out[(slice(None),) + tuple(slice(0, n * f) for n, f in zip(crop.shape[1:], factors))]
    lo, hi = back
    shape = (-1,) + (1,) * (out.ndim - 1)
    out = out * (np.asarray(hi) - np.asarray(lo)).reshape(shape) + np.asarray(lo).reshape(shape)
    data = out[0] if out.shape[0] == 1 else out
    starts = [r.start or 0 for r in region]
    placed = tuple(slice(a * f, a * f + n) for a, f, n in zip(starts, factors, out.shape[1:]))
    return Preview(data, placed if data.ndim == len(region) else (slice(0, data.shape[0]),) + placed,
                   PreviewKind.IMAGE)


@dataclass
class RestorationData:
    """What Noise2Void or CARE trains on: input images, their targets (CARE), and the axes of both."""

    images: list[np.ndarray]
    targets: list[np.ndarray] | None = None
    axes: str | None = None
    names: list[str] = field(default_factory=list)


def train_kind(data: RestorationData, settings: TrainSettings, token: CancelToken = NEVER, *, device: str = "auto",
               name: str | None = None, save_to: str | Path | None = None, init: str | None = None,
               preview: tuple[int, tuple[slice, ...]] | None = None) -> Job:
    """N2V or CARE on ``data`` (the kind is in ``settings``); ``init`` is not supported."""
    if init:
        raise UserError(f"{settings.kind.upper()} cannot continue from another model yet", "train a new one")
    s = replace(settings, device=device, axes=data.axes or settings.axes)
    result = yield from train_restoration(data.images, data.targets, s, token, save_to, preview, data.names or None)
    if data.names:
        result.model.config.setdefault("data", {"images": list(data.names)})
    return result
