"""CARE on the noisy nuclei sample, for ``denoising.py --care`` and ``--sr``: top half to train, bottom half to score.

Every learned method gets the same budget: wall-clock minutes (the figures)
or a fixed number of training steps (``--steps``, for comparing recipes on a
busy machine, where minutes buy fewer steps). Each is scored on the bottom
half as is and scale-invariant (:mod:`napari_dlmicro.core.evaluation.restoration`).

- ``--care``: CARE on the top half's noisy/clean pair against the best
  Gaussian blur (its sigma picked with the clean image), Noise2Void trained on
  the whole noisy image, and CSBDeep's CARE (where ``csbdeep`` with TensorFlow
  is installed) on the same pair and budget with its own defaults.
- ``--sr``: each 2x2 block of the clean image averaged, then Poisson noise;
  CARE x2 on the top half's low/high pair against bicubic interpolation
  (cubic convolution as torch computes it, and cubic spline) and each
  followed by the best Gaussian blur.
"""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import convolve
from skimage.filters import gaussian

from napari_dlmicro._sample_noisy import PEAK_PHOTONS, SEED, noisy_nuclei_arrays
from napari_dlmicro.core.evaluation.restoration import psnr, psnr_scale_invariant, upscaled
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
from napari_dlmicro.core.runtime.events import run_to_end

SIGMAS = np.arange(0.5, 4.01, 0.25)


@dataclass
class Budget:
    """Minutes of wall-clock time, or (when ``steps`` is set) that many training steps."""

    minutes: float
    steps: int | None = None

    def settings(self, steps_per_epoch: int = 50) -> dict:
        """TrainSettings fields for this budget."""
        if self.steps is None:
            return {"minutes": self.minutes, "epochs": None}
        per_epoch = min(steps_per_epoch, self.steps)
        return {"epochs": max(1, round(self.steps / per_epoch)), "steps_per_epoch": per_epoch}

    def __str__(self) -> str:
        return f"{self.steps} steps" if self.steps is not None else f"{self.minutes:g} min"


def scores(truth: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """PSNR as is and scale-invariant."""
    return psnr(truth, image), psnr_scale_invariant(truth, image)


def best_gaussian(image: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(sigma, PSNR, scale-invariant PSNR) of the Gaussian blur that scores best against ``truth``."""
    best = max(((s, *scores(truth, gaussian(image, s, preserve_range=True))) for s in SIGMAS), key=lambda r: r[1])
    return float(best[0]), best[1], best[2]


def noise_sigma(image: np.ndarray) -> float:
    """The standard deviation of an image's pixel noise, by Immerkær's method (a Laplacian difference's mean |.|)."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = convolve(np.asarray(image, np.float64), kernel)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).mean() / 6)


def ceiling(truth: np.ndarray) -> str:
    """What the reference's own noise allows: the PSNR against it of its noise-free signal."""
    sigma = noise_sigma(truth)
    span = float(np.ptp(truth))
    return (f"the clean reference has pixel noise of its own (sigma {sigma:.2f} of a range {span:g}): its noise-free "
            f"signal itself would score {20 * np.log10(span / sigma):.2f} dB against it")


def row(name: str, values: tuple[float, float], extra: str = "") -> str:
    """One line of the table."""
    return f"{name:40s} PSNR {values[0]:6.2f} dB   scale-invariant {values[1]:6.2f} dB  {extra}"


def care(low: np.ndarray, high: np.ndarray, test: np.ndarray, budget: Budget, device: str, tta: bool = True,
         **extra) -> tuple[np.ndarray, dict]:
    """Our CARE trained on ``low -> high`` within ``budget``; its output on ``test`` and the run's figures."""
    s = TrainSettings(kind="care", device=device, **budget.settings(), **extra)
    result = run_to_end(train_restoration([low], [high], s))
    info = {"steps": result.steps, "seconds": result.seconds,
            "patches/s": result.steps * s.batch_size / max(result.seconds, 1e-9)}
    return denoise(test, result.model, tta=tta), info


def n2v(noisy: np.ndarray, budget: Budget, device: str) -> np.ndarray:
    """Our Noise2Void (its defaults) trained on the whole noisy image within ``budget``, applied to it (8 flips)."""
    s = TrainSettings(kind="n2v", device=device, **budget.settings())
    return denoise(noisy, run_to_end(train_restoration([noisy], None, s)).model, tta=True)


def csbdeep_care(low: np.ndarray, high: np.ndarray, test: np.ndarray, budget: Budget) -> tuple[np.ndarray, dict] | None:
    """CSBDeep's CARE (its defaults: patches of 64, batch 16, L1, residual U-Net) on the same pair and budget.

    None when csbdeep or TensorFlow is not installed. Trained on CSBDeep's own
    patches (its percentile normalisation and background filter), stopped by
    a Keras callback when the budget is spent; predicted with its default
    normaliser, which maps the output back with the input's own percentiles.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:  # optional peers, heavy: imported only when asked for
        from csbdeep.data import RawData, create_patches
        from csbdeep.models import CARE, Config
        from tensorflow import keras
    except ImportError:
        return None

    class Stop(keras.callbacks.Callback):
        """Stop when the minutes (or steps) are spent; count the steps."""

        def __init__(self) -> None:
            super().__init__()
            self.start, self.steps = time.perf_counter(), 0

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.steps += 1
            spent = (self.steps >= budget.steps if budget.steps is not None
                     else time.perf_counter() - self.start > budget.minutes * 60)
            if spent:
                self.model.stop_training = True

    raw = RawData.from_arrays(low[None], high[None], axes="YX")
    x, y, _ = create_patches(raw, patch_size=(64, 64), n_patches_per_image=1024, verbose=False)
    x, y = np.moveaxis(x, 1, -1), np.moveaxis(y, 1, -1)
    n_val = len(x) // 10
    config = Config("YX", n_channel_in=1, n_channel_out=1, train_steps_per_epoch=50, train_tensorboard=False)
    with tempfile.TemporaryDirectory() as work:
        model = CARE(config, "csbdeep", basedir=work)
        model.prepare_for_training()
        stop = Stop()
        model.callbacks.append(stop)
        stop.start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # Keras' progress bar, which CSBDeep always shows
            model.train(x[n_val:], y[n_val:], (x[:n_val], y[:n_val]), epochs=100_000)
        seconds = time.perf_counter() - stop.start
        out = model.predict(test, "YX")
    return out, {"steps": stop.steps, "seconds": seconds, "patches/s": stop.steps * 16 / seconds}


def parse_settings(pairs: list[str]) -> dict:
    """``FIELD=VALUE`` strings as TrainSettings overrides: Python literals (32, 1e-3, True) as such, else text."""
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--care-setting {pair!r}: give FIELD=VALUE with a TrainSettings field "
                             f"({', '.join(sorted(fields))})")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def run_care(budget: Budget, n2v_budget: Budget, device: str, peer: bool, **extra) -> None:
    """The CARE denoising comparison; prints one row per method (``extra``: our CARE's TrainSettings overrides)."""
    noisy, clean = noisy_nuclei_arrays()
    h = noisy.shape[0] // 2
    top_x, top_y, test_x, test_y = noisy[:h], clean[:h], noisy[h:], clean[h:]
    print(f"CARE: trained on the top half ({top_x.shape}), scored on the bottom half; {budget} each; {load()}"
          + (f"; our CARE with {extra}" if extra else ""))
    print(row("noisy input", scores(test_y, test_x)))
    print(f"  ({ceiling(test_y)})")
    sigma, *gauss = best_gaussian(test_x, test_y)
    print(row("best Gaussian", tuple(gauss), f"(sigma {sigma:g})"))
    ours, info = care(top_x, top_y, test_x, budget, device, **extra)
    ours_scores = scores(test_y, ours)
    print(row("napari-dlmicro CARE", ours_scores, _info(info)))
    n2v_scores = scores(test_y, n2v(noisy, n2v_budget, device)[h:])
    print(row(f"napari-dlmicro N2V (whole image, {n2v_budget})", n2v_scores))
    print(f"{'  CARE over N2V':40s} {ours_scores[0] - n2v_scores[0]:+.2f} dB, scale-invariant "
          f"{ours_scores[1] - n2v_scores[1]:+.2f} dB; over the best Gaussian {ours_scores[0] - gauss[0]:+.2f} dB")
    theirs = csbdeep_care(top_x, top_y, test_x, budget) if peer else None
    if theirs is None:
        print("CSBDeep CARE: skipped (--skip-peer, or csbdeep with TensorFlow not installed)")
    else:
        peer_scores = scores(test_y, theirs[0])
        print(row("CSBDeep CARE", peer_scores, _info(theirs[1])))
        print(f"{'  ours over CSBDeep':40s} {ours_scores[0] - peer_scores[0]:+.2f} dB, scale-invariant "
              f"{ours_scores[1] - peer_scores[1]:+.2f} dB")
    print(f"done; {load()}")


def low_resolution(clean: np.ndarray, peak: float = PEAK_PHOTONS, seed: int = SEED) -> np.ndarray:
    """Each 2x2 block of ``clean`` averaged, then Poisson noise at ``peak`` photons for the brightest clean pixel."""
    h, w = clean.shape
    blocks = clean.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    top = float(clean.max())
    rng = np.random.default_rng(seed)
    return (rng.poisson(blocks / top * peak) / peak * top).astype(np.float32)


def run_sr(budget: Budget, device: str, **extra) -> None:
    """The x2 super-resolution comparison; prints one row per method (``extra``: our CARE's TrainSettings overrides)."""
    _, clean = noisy_nuclei_arrays()
    low = low_resolution(clean)
    h = low.shape[0] // 2
    top_x, test_x = low[:h], low[h:]
    top_y, test_y = clean[: 2 * h], clean[2 * h:]
    print(f"CARE x2: trained on the top half ({top_x.shape} -> {top_y.shape}), scored on the bottom half; {budget}; "
          f"{load()}" + (f"; our CARE with {extra}" if extra else ""))
    print(f"  ({ceiling(test_y)})")
    spline = upscaled(test_x, test_y.shape).astype(np.float32)
    keys = F.interpolate(torch.from_numpy(test_x)[None, None], scale_factor=2.0, mode="bicubic",
                         align_corners=False)[0, 0].numpy()
    baselines = []
    for name, up in (("bicubic (cubic convolution)", keys), ("bicubic (cubic spline)", spline)):
        baselines.append(scores(test_y, up))
        print(row(name, baselines[-1]))
        sigma, *gauss = best_gaussian(up, test_y)
        baselines.append(tuple(gauss))
        print(row(f"{name} + best Gaussian", baselines[-1], f"(sigma {sigma:g})"))
    ours, info = care(top_x, top_y, test_x, budget, device, **{**extra, "upsample": 2})
    ours_scores = scores(test_y, ours)
    print(row("napari-dlmicro CARE x2", ours_scores, _info(info)))
    better = max(b[0] for b in baselines), max(b[1] for b in baselines)
    print(f"{'  over the best baseline':40s} {ours_scores[0] - better[0]:+.2f} dB, scale-invariant "
          f"{ours_scores[1] - better[1]:+.2f} dB")
    print(f"done; {load()}")


def load() -> str:
    """The machine's load average (1 and 5 minutes) and core count, to say how busy it was."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def _info(info: dict) -> str:
    return f"({info['steps']} steps, {info['seconds']:.0f} s, {info['patches/s']:.0f} patches/s)"
