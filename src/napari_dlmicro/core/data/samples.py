"""Data for image-to-image training and prediction: samples, checks, patches.

An image with axes (any order of ``T Z C Y X``) becomes a list of *samples*,
float32 arrays shaped ``(C, *spatial)`` with spatial ``YX`` or ``ZYX``: one per
time point, and per channel when channels are denoised independently.
:func:`from_samples` puts outputs back in the input's own axis order.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter
from skimage.filters import threshold_otsu

from napari_dlmicro.core.data.renoise import ResidualNoise
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.axes import default_axes, normalize_axes

CHANNEL_MODES = ("independent", "joint")


@dataclass(frozen=True)
class Layout:
    """How an image was cut into samples, to put outputs back together."""

    axes: str  # the input's axes, normalised
    shape: tuple[int, ...]
    order: str  # canonical order used for the samples (T C Z Y X subset)
    channels: str  # "independent" | "joint"

    @property
    def spatial(self) -> str:
        return "".join(a for a in self.order if a in "ZYX")

    def grown(self, factors: dict[str, int]) -> Layout:
        """The layout of an output ``factors[axis]`` times larger along those axes (super-resolution)."""
        shape = tuple(n * int(factors.get(a, 1)) for n, a in zip(self.shape, self.axes))
        return Layout(self.axes, shape, self.order, self.channels)


def _canonical(image: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    order = "".join(a for a in "TCZYX" if a in axes)
    return np.transpose(image, [axes.index(a) for a in order]), order


def to_samples(image: np.ndarray, axes: str | None = None, channels: str = "independent"
               ) -> tuple[list[np.ndarray], Layout]:
    """Cut ``image`` into ``(C, *spatial)`` float32 samples and return its layout."""
    image = np.asarray(image)
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise UserError(f"cannot denoise {image.dtype} data", "pick a numeric grey-value image layer")
    if channels not in CHANNEL_MODES:
        raise UserError(f"unknown channel mode '{channels}'", f"use one of {', '.join(CHANNEL_MODES)}")
    axes = normalize_axes(axes or default_axes(image.ndim, image.shape), image.ndim)
    data, order = _canonical(image, axes)
    t = data.shape[0] if "T" in order else 1
    c = data.shape[order.index("C")] if "C" in order else 1
    spatial_shape = tuple(data.shape[order.index(a)] for a in order if a in "ZYX")
    data = data.reshape(t, c, *spatial_shape).astype(np.float32, copy=False)
    if channels == "independent":
        samples = [data[i, j:j + 1] for i in range(t) for j in range(c)]
    else:
        samples = [data[i] for i in range(t)]
    return samples, Layout(axes, tuple(image.shape), order, channels)


def from_samples(outputs: Sequence[np.ndarray], layout: Layout) -> np.ndarray:
    """The inverse of :func:`to_samples`: one float32 array in the input's axes."""
    stacked = np.stack([np.asarray(o, np.float32) for o in outputs])
    canon_shape = tuple(layout.shape[layout.axes.index(a)] for a in layout.order)
    data = stacked.reshape(canon_shape)
    return np.transpose(data, [layout.order.index(a) for a in layout.axes])


def check_image(image: np.ndarray, name: str = "the image") -> int:
    """Reject images that cannot be trained on; return the number of NaN/inf pixels."""
    finite = np.isfinite(image)
    n_bad = int(image.size - np.count_nonzero(finite))
    if n_bad == image.size:
        raise UserError(f"{name} has no finite pixels (all NaN or infinite)", "pick an image with data")
    values = image[finite] if n_bad else image
    if float(values.max()) == float(values.min()):
        raise UserError(f"{name} is constant (every pixel is {float(values.min()):g}), so there is nothing to learn",
                        "pick an image with signal and noise, e.g. a raw acquisition")
    return n_bad


def fill_nonfinite(sample: np.ndarray) -> np.ndarray:
    """``sample`` with NaN/inf pixels set to the median of its finite pixels."""
    bad = ~np.isfinite(sample)
    if not bad.any():
        return sample
    out = sample.copy()
    out[bad] = float(np.median(sample[~bad])) if (~bad).any() else 0.0
    return out


def channel_range(samples: Sequence[np.ndarray], low: float = 1.0, high: float = 99.8,
                  max_pixels: int = 2_000_000, seed: int = 0) -> tuple[list[float], list[float]]:
    """Per-channel percentiles over all samples (a random subset on large data)."""
    rng = np.random.default_rng(seed)
    c = samples[0].shape[0]
    lows, highs = [], []
    for ch in range(c):
        values = np.concatenate([s[ch].reshape(-1) for s in samples])
        values = values[np.isfinite(values)]
        if values.size > max_pixels:
            values = rng.choice(values, max_pixels, replace=False)
        lo, hi = np.percentile(values, [low, high])
        if hi <= lo:
            hi = lo + max(float(values.max() - values.min()), 1e-6)
        lows.append(float(lo))
        highs.append(float(hi))
    return lows, highs


def normalise(sample: np.ndarray, lo: Sequence[float], hi: Sequence[float]) -> np.ndarray:
    """Map per-channel ``lo``/``hi`` to 0/1 (float32); non-finite pixels become the median first."""
    shape = (-1,) + (1,) * (sample.ndim - 1)
    lo_a, hi_a = np.asarray(lo, np.float32).reshape(shape), np.asarray(hi, np.float32).reshape(shape)
    return ((fill_nonfinite(sample) - lo_a) / (hi_a - lo_a)).astype(np.float32)


def fit_patch(patch: Sequence[int], spatial_shapes: Sequence[tuple[int, ...]], div_by: Sequence[int],
              minimum: int | Sequence[int] = 8) -> tuple[int, ...]:
    """The patch size, shrunk to the smallest image where needed (multiples of ``div_by``).

    ``minimum`` is the smallest size the network can use, one for all axes or
    one per axis; a smaller patch asked for grows to it.
    """
    smallest = np.min(np.array(spatial_shapes), axis=0)
    minima = (minimum,) * len(patch) if isinstance(minimum, int) else tuple(minimum)
    out = []
    for p, s, d, least, axis in zip(patch, smallest, div_by, minima, "ZYX"[3 - len(patch):]):
        size = min(max(int(p), _round_up(least, d)), int(s) // d * d)
        if size < max(least, d):
            raise UserError(f"the image is only {int(s)} pixels along {axis}, smaller than the smallest patch "
                            f"the network can use ({max(least, d)} pixels)",
                            "use a larger image or region, or a 2D model for thin stacks")
        out.append(size)
    return tuple(out)


def _round_up(n: int, m: int) -> int:
    return -(-int(n) // int(m)) * int(m)


def split_validation(samples: list[np.ndarray], targets: list[np.ndarray] | None, fraction: float,
                     patch: tuple[int, ...], scale: Sequence[int] | None = None) -> tuple[list, list, list, list]:
    """Hold out ``fraction`` of the data for validation.

    With several samples, whole samples are held out; with one, a stripe at
    the bottom of Y (when what is left still fits a patch). ``scale`` is how
    many times larger each target is along each spatial axis (its stripe is
    cut that much lower). Returns train inputs, train targets, validation
    inputs, validation targets.
    """
    targets = targets if targets is not None else samples
    fy = int(scale[-2]) if scale is not None else 1
    n = len(samples)
    fraction = float(min(max(fraction, 0.0), 0.5))
    if fraction == 0:
        return samples, targets, samples, targets
    if n >= 2 and round(n * fraction) >= 1:
        k = int(round(n * fraction))
        return samples[:-k], targets[:-k], samples[-k:], targets[-k:]
    ty, tr, vy, vr = [], [], [], []
    y_axis, py = samples[0].ndim - 2, patch[-2]
    for s, t in zip(samples, targets):
        h = s.shape[y_axis]
        h_val = max(py, int(round(h * fraction)))
        if h - h_val < py:
            ty.append(s), tr.append(t), vy.append(s), vr.append(t)
            continue
        cut = [slice(None)] * s.ndim
        cut[y_axis] = slice(0, h - h_val)
        ty.append(s[tuple(cut)])
        cut[y_axis] = slice(0, (h - h_val) * fy)
        tr.append(t[tuple(cut)])
        cut[y_axis] = slice(h - h_val, h)
        vy.append(s[tuple(cut)])
        cut[y_axis] = slice((h - h_val) * fy, h * fy)
        vr.append(t[tuple(cut)])
    return ty, tr, vy, vr


def grid_patches(samples: Sequence[np.ndarray], patch: tuple[int, ...], limit: int = 64,
                 scale: Sequence[int] | None = None) -> np.ndarray:
    """Non-overlapping patches over ``samples`` (at most ``limit``), stacked (N, C, *patch).

    With ``scale``, the patches sit where those of the smaller images, ``scale`` times smaller, sit.
    """
    f = tuple(int(x) for x in scale) if scale is not None else (1,) * len(patch)
    out = []
    for s in samples:
        starts = [range(0, n // k - p + 1, p) for n, p, k in zip(s.shape[1:], patch, f)]
        for corner in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(patch)):
            out.append(s[(slice(None),) + tuple(slice(c * k, (c + p) * k) for c, p, k in zip(corner, patch, f))])
            if len(out) >= limit:
                return np.stack(out)
    return np.stack(out)


class PatchSampler:
    """Random patches (with flips and 90° rotations in YX) from inputs and targets.

    ``scale`` is how many times larger each target is than its input along
    each spatial axis (super-resolution): a target patch covers the input
    patch's region, ``scale`` times as many pixels. ``focus`` is the fraction
    of patches drawn where the target has signal (see :func:`signal_map`)
    rather than anywhere; ``intensity`` scales each input patch and its target
    alike by a random 0.5-2x; ``renoise`` is the fraction of input patches
    made afresh from their target and the pair's own noise
    (:class:`.renoise.ResidualNoise`) instead of cut from the input.
    """

    def __init__(self, inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None,
                 patch: tuple[int, ...], augment: bool = True, seed: int = 0, scale: Sequence[int] | None = None,
                 focus: float = 0.0, intensity: bool = False, renoise: float = 0.0) -> None:
        self.inputs, self.targets = list(inputs), list(targets) if targets is not None else None
        self.patch, self.augment = tuple(patch), augment
        self.scale = tuple(int(f) for f in scale) if scale is not None else (1,) * len(self.patch)
        self.rng = np.random.default_rng(seed)
        sizes = np.array([np.prod(s.shape[1:]) for s in self.inputs], float)
        self.weights = sizes / sizes.sum()
        self.square = patch[-1] == patch[-2] and self.scale[-1] == self.scale[-2]
        self.focus, self.intensity = float(focus), bool(intensity)
        self.where = ([_signal_corners(t, self.patch, self.scale) for t in self.targets]
                      if self.focus > 0 and self.targets is not None else None)
        self.renoise = float(renoise) if self.targets is not None else 0.0
        self.noise = ResidualNoise(self.inputs, self.targets, self.scale) if self.renoise > 0 else None

    def _corner(self, i: int) -> list[int]:
        s = self.inputs[i]
        if self.where is not None and self.rng.random() < self.focus:
            grid, weights, stride = self.where[i]
            base = np.unravel_index(int(self.rng.choice(weights.size, p=weights)), grid)
            return [min(n - q, int(b) * st + int(self.rng.integers(0, st))) for b, st, n, q in
                    zip(base, stride, s.shape[1:], self.patch)]
        return [int(self.rng.integers(0, n - p + 1)) for n, p in zip(s.shape[1:], self.patch)]

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``size`` random patches, (B, C, *patch), and their targets (or ``None``)."""
        xs, ys = [], []
        for _ in range(size):
            i = int(self.rng.choice(len(self.inputs), p=self.weights))
            corner = self._corner(i)
            region = (slice(None),) + tuple(slice(c, c + p) for c, p in zip(corner, self.patch))
            fresh = self.noise is not None and self.rng.random() < self.renoise
            x = self.noise.draw(i, region, self.rng) if fresh else self.inputs[i][region]
            y = None
            if self.targets is not None:
                y = self.targets[i][(slice(None),) + tuple(slice(c * f, (c + p) * f) for c, p, f in
                                                           zip(corner, self.patch, self.scale))]
            if self.augment:
                k = int(self.rng.integers(0, 4)) if self.square else 2 * int(self.rng.integers(0, 2))
                flip = bool(self.rng.integers(0, 2))
                x = self._aug(x, k, flip)
                y = self._aug(y, k, flip) if y is not None else None
            if self.intensity:
                gain = float(np.exp(self.rng.uniform(np.log(0.5), np.log(2.0))))
                x = x * gain
                y = y * gain if y is not None else None
            xs.append(x)
            ys.append(y)
        xb = np.ascontiguousarray(np.stack(xs), np.float32)
        yb = np.ascontiguousarray(np.stack(ys), np.float32) if self.targets is not None else None
        return xb, yb

    @staticmethod
    def _aug(a: np.ndarray, k: int, flip: bool) -> np.ndarray:
        a = np.rot90(a, k, axes=(-2, -1))
        return a[..., ::-1] if flip else a


def signal_map(target: np.ndarray) -> np.ndarray:
    """Where a (C, *spatial) target has signal: any channel above its Otsu threshold (foreground vs background)."""
    out = np.zeros(target.shape[1:], bool)
    for ch in target:
        finite = ch[np.isfinite(ch)]
        if finite.size and finite.max() > finite.min():
            out |= np.nan_to_num(ch, nan=float(finite.min())) > threshold_otsu(finite)
    return out


def _signal_corners(target: np.ndarray, patch: tuple[int, ...], scale: tuple[int, ...]
                    ) -> tuple[tuple[int, ...], np.ndarray, tuple[int, ...]]:
    """Patch corners on a coarse grid, weighted by the share of signal pixels the patch holds."""
    sig = signal_map(target)
    if any(f > 1 for f in scale):  # back on the input's grid: a low-resolution pixel has signal if any of its block has
        sig = sig.reshape([n for m, f in zip(sig.shape, scale) for n in (m // f, f)]).any(
            axis=tuple(range(1, 2 * sig.ndim, 2)))
    share = uniform_filter(sig.astype(np.float32), size=patch, mode="constant")
    stride = tuple(max(1, p // 8) for p in patch)
    # the share of the patch whose corner is c sits at its centre, c + p // 2
    index = tuple(slice(p // 2, n - p + p // 2 + 1, st) for n, p, st in zip(sig.shape, patch, stride))
    weights = share[index].astype(np.float64) + 1e-3
    return weights.shape, weights.ravel() / weights.sum(), stride


def sample_region(layout: Layout, index: int, sample: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """Where sample ``index`` belongs in the output (slices in the input's axes), and ``sample`` shaped to fit there."""
    canon_shape = {a: layout.shape[layout.axes.index(a)] for a in layout.order}
    n_c = canon_shape.get("C", 1)
    per_t = n_c if layout.channels == "independent" else 1
    t, c = divmod(index, per_t)
    region, shape = {}, {}
    for a in layout.order:
        if a == "T":
            region[a], shape[a] = slice(t, t + 1), 1
        elif a == "C":
            region[a] = slice(c, c + 1) if layout.channels == "independent" else slice(0, n_c)
            shape[a] = 1 if layout.channels == "independent" else n_c
        else:
            region[a], shape[a] = slice(0, canon_shape[a]), canon_shape[a]
    data = np.asarray(sample, np.float32).reshape([shape[a] for a in layout.order])
    data = np.transpose(data, [layout.order.index(a) for a in layout.axes])
    return tuple(region[a] for a in layout.axes), data
