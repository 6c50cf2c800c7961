"""Fresh noise for CARE's training pairs: each pair's own residuals, redrawn pixel by pixel at the same signal level.

A CARE pair is a target ``y`` and an input ``x`` that is ``y`` (on the
input's grid: averaged over each block of an upsampling pair) plus what the
acquisition did to it, mostly noise. With one or a few pairs the network sees
one draw of that noise and learns it by heart: on the noisy nuclei sample it
scored 0.7 dB higher on its training half than on the held-out one.
:class:`ResidualNoise` makes new inputs ``y + r``, with each pixel's ``r``
drawn at random from the pair's residuals ``x - y`` at pixels whose signal is
about the same (one of ``BINS`` quantile bins per channel): the noise's
dependence on the signal (shot noise), its offset and its shape (a Poisson
count's skew at a few photons) come from the pair itself, with no noise model
to fit or get wrong. What it cannot keep is noise correlated between pixels;
and a remade input carries its target's own noise, which a real input does
not share (a small part of the whole where targets are much cleaner than
inputs: a sigma of 5 against 30 on the noisy nuclei sample).

Where an input differs from its target by more than noise (a blur, a shift:
what CARE should learn to undo), remade inputs would hide that difference.
:func:`auto_share` measures it (:func:`structure_ratio`) and remakes all
inputs only where the pairs differ by pixel noise alone, half of them where
some structure shows, none where much does.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

BINS = 64  # signal levels per channel; each holds 1/BINS of the pixels, thousands on a 256² pair
SMOOTH = 2.0  # sigma of the smoothing that pixel noise does not survive and structure does
# structure_ratio's bounds. Measured on the noisy nuclei sample's pair: 1.008 (the x2 pair 1.002); its clean
# image blurred (sigma 0.7, 1.5 px) or shifted (0.3, 1 px) under the same noise: 1.055, 1.14, 1.04, 1.36
NOISE_ONLY, SOME_STRUCTURE = 1.1, 1.5
MAX_PIXELS = 1 << 22  # the check reads at most this many pixels of a sample (its centre)


def block_mean(target: np.ndarray, scale: Sequence[int]) -> np.ndarray:
    """A (C, *spatial) target averaged over blocks of ``scale`` pixels per spatial axis, onto its input's grid."""
    if all(f == 1 for f in scale):
        return target
    shape = [target.shape[0]]
    for n, f in zip(target.shape[1:], scale):
        shape += [n // f, f]
    return target.reshape(shape).mean(axis=tuple(range(2, 2 * len(scale) + 1, 2)))


def _bin_map(signal: np.ndarray) -> np.ndarray:
    """Each pixel's signal level: one of ``BINS`` quantile bins of ``signal``."""
    edges = np.quantile(signal, np.linspace(0, 1, BINS + 1)[1:-1])
    return np.searchsorted(edges, signal).astype(np.int16)


def _centre(a: np.ndarray) -> np.ndarray:
    """The centre of a spatial array, at most ``MAX_PIXELS`` pixels."""
    shrink = max(1.0, (a.size / MAX_PIXELS) ** (1 / a.ndim))
    keep = [max(1, int(n / shrink)) for n in a.shape]
    return a[tuple(slice((n - k) // 2, (n - k) // 2 + k) for n, k in zip(a.shape, keep))]


def structure_ratio(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], scale: Sequence[int]) -> float:
    """How much of what separates inputs from targets survives smoothing, against pixel noise's share.

    Per channel of each (C, *spatial) pair: the residual of the input against
    the signal, less the least-squares line between them and its mean at each
    signal level (so a gain, an offset or a curve between the two counts for
    nothing), smoothed; its variance kept, over what smoothing keeps
    of white noise. About 1 where the pairs differ by pixel-independent noise,
    more where structure (blur, shift) is part of the difference. The median
    over channels and pairs; infinite when there is no residual at all.
    """
    rng = np.random.default_rng(0)
    ratios = []
    for x, t in zip(inputs, targets):
        signal = block_mean(np.asarray(t, np.float32), scale)
        for c in range(x.shape[0]):
            sig = _centre(signal[c]).astype(np.float64)
            inp = _centre(np.asarray(x[c], np.float64))
            if not sig.var() > 0:
                continue
            gain = np.cov(sig.ravel(), inp.ravel())[0, 1] / sig.var()
            res = inp - gain * sig  # the least-squares line first; what is left of a curve, per level below
            bins = _bin_map(sig)
            level = np.bincount(bins.ravel(), res.ravel(), BINS) / np.maximum(np.bincount(bins.ravel(),
                                                                                          minlength=BINS), 1)
            res = res - level[bins]
            if not res.var() > 0:
                continue
            kept = gaussian_filter(res, SMOOTH).var() / res.var()
            white = gaussian_filter(rng.standard_normal(res.shape), SMOOTH).var()
            ratios.append(kept / white)
    return float(np.median(ratios)) if ratios else math.inf


def auto_share(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], scale: Sequence[int]
               ) -> tuple[float, str]:
    """The share of inputs to remake for these pairs (1, 0.5 or 0) and a sentence saying why."""
    ratio = structure_ratio(inputs, targets, scale)
    if ratio < NOISE_ONLY:
        return 1.0, (f"the inputs differ from their targets by pixel noise alone (structure ratio {ratio:.2f}): "
                     "every training input is remade from its target with fresh noise (Fresh noise 1)")
    if ratio < SOME_STRUCTURE:
        return 0.5, (f"the inputs differ from their targets by noise and some structure (structure ratio "
                     f"{ratio:.2f}): half the training inputs are remade with fresh noise (Fresh noise 0.5)")
    return 0.0, (f"the inputs differ from their targets by more than noise (structure ratio {ratio:.2f}: a blur, "
                 "a shift or other structure, which CARE learns from the inputs as they are): Fresh noise 0")


class _Channel:
    """One channel's residuals sorted by signal bin, and each pixel's bin."""

    def __init__(self, signal: np.ndarray, residual: np.ndarray) -> None:
        self.bins = _bin_map(signal)
        order = np.argsort(self.bins, axis=None, kind="stable")
        self.pool = residual.ravel()[order].astype(np.float32)
        # every bin a pixel falls in holds that pixel at least (bins can be empty where many pixels share a value)
        self.counts = np.bincount(self.bins.ravel(), minlength=BINS)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])


class ResidualNoise:
    """New inputs for training pairs: ``signal + residual`` redrawn by signal level (see the module's note)."""

    def __init__(self, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], scale: Sequence[int]) -> None:
        self.signal = [block_mean(np.asarray(t, np.float32), scale) for t in targets]
        self.channels = [[_Channel(s[c], np.asarray(x[c], np.float32) - s[c]) for c in range(x.shape[0])]
                         for x, s in zip(inputs, self.signal)]

    def draw(self, index: int, region: tuple[slice, ...], rng: np.random.Generator) -> np.ndarray:
        """A fresh input for ``region`` (channel slice first, then the spatial slices) of pair ``index``."""
        signal = self.signal[index][region]
        out = np.empty_like(signal)
        for c, ch in enumerate(self.channels[index]):
            bins = ch.bins[region[1:]]
            pick = ch.starts[bins] + (rng.random(bins.shape) * ch.counts[bins]).astype(np.int64)
            out[c] = signal[c] + ch.pool[pick]
        return out
