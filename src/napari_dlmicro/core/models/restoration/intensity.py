"""CARE's intensity models: how inputs and targets are put on the network's scale, and outputs taken back.

``relative`` (the default): everything is estimated from the input alone,
per image: its 1st and 99.8th percentiles (per channel) put the input on a
0-1 scale, and the target's range is placed relative to that one, at the
fractions ``a`` and ``b`` of it (``target_in_input``: the median over the
training pairs of where each target's own percentiles fall in its input's
range). The network learns the target on its own 0-1 scale, and its output is
mapped back with the range the image's input gives. So an image it has not
seen, with other content or another exposure or offset, comes out on the
scale its own pixels set; and the map needs nothing but the input, which is
all prediction has (a map estimated from each target would not exist there).

``absolute``: one fixed map for all inputs (the training inputs' percentiles)
and one for all targets; outputs are in the training targets' units whatever
the image. Right when every image shares one acquisition and its absolute
intensities matter; an image of other brightness comes out off.

Models saved before these two existed normalised each input by its own
percentiles and mapped outputs back with the training targets' range
(``per_image`` input with a ``target`` range); they still load and predict so.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from napari_dlmicro.core.data.normalize import percentile_range
from napari_dlmicro.core.data.samples import channel_range, normalise

INTENSITY_MODES = ("relative", "absolute")
PERCENTILES = (1.0, 99.8)


def sample_range(sample: np.ndarray, percentiles: Sequence[float] = PERCENTILES) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``lo, hi`` percentiles of one (C, *spatial) sample, never equal."""
    lo, hi = percentile_range(sample, *percentiles, axis=tuple(range(1, sample.ndim)))
    lo, hi = lo.reshape(-1).astype(np.float32), hi.reshape(-1).astype(np.float32)
    flat = hi <= lo
    if flat.any():  # a channel flat between its percentiles: fall back to its full range
        finite = np.where(np.isfinite(sample), sample, np.nan)
        full = np.nanmax(finite.reshape(sample.shape[0], -1), 1) - np.nanmin(finite.reshape(sample.shape[0], -1), 1)
        hi = np.where(flat, lo + np.maximum(full, 1e-6), hi).astype(np.float32)
    return lo, hi


Range = tuple[np.ndarray, np.ndarray]


def normalise_pairs(inputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], mode: str
                    ) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, Any], list[Range]]:
    """Inputs and targets on the network's scale for ``mode``, the ``normalization`` entry of the config,
    and for each pair the ``lo, hi`` that take the network's output back to the target's units."""
    if mode not in INTENSITY_MODES:
        raise ValueError(f"unknown intensity mode {mode!r}; use one of {INTENSITY_MODES}")
    pct = [float(p) for p in PERCENTILES]
    if mode == "relative":
        ranges = [sample_range(x, pct) for x in inputs]
        a, b = _target_in_input(ranges, [sample_range(y, pct) for y in targets])
        norm = {"intensity": "relative", "percentiles": pct, "input_mode": "per_image",
                "target_in_input": {"low": a.tolist(), "high": b.tolist()}}
        xs, ys, back = [], [], []
        for x, y, (lo, hi) in zip(inputs, targets, ranges):
            tlo, thi = output_range(norm, lo, hi)
            xs.append(normalise(x, lo, hi))
            ys.append(normalise(y, tlo, thi))
            back.append((tlo, thi))
        return xs, ys, norm, back
    lo, hi = channel_range(inputs, *pct)
    tlo, thi = channel_range(targets, *pct)
    norm = {"intensity": "absolute", "percentiles": pct, "input_mode": "dataset",
            "input": {"low": lo, "high": hi}, "target": {"low": tlo, "high": thi}}
    back = [(np.asarray(tlo, np.float32), np.asarray(thi, np.float32))] * len(inputs)
    return [normalise(x, lo, hi) for x in inputs], [normalise(y, tlo, thi) for y in targets], norm, back


def _target_in_input(inputs: Sequence[Range], targets: Sequence[Range]) -> tuple[np.ndarray, np.ndarray]:
    """Where the targets' ranges fall in their inputs' ranges: per-channel fractions ``a < b`` (medians)."""
    a = np.median([(tlo - lo) / (hi - lo) for (lo, hi), (tlo, _) in zip(inputs, targets)], axis=0)
    b = np.median([(thi - lo) / (hi - lo) for (lo, hi), (_, thi) in zip(inputs, targets)], axis=0)
    flat = ~(b > a)  # targets flat where their inputs vary: keep the input's own range
    return np.where(flat, 0.0, a).astype(np.float32), np.where(flat, 1.0, b).astype(np.float32)


def input_range(norm: dict[str, Any], sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``lo, hi`` that put ``sample`` (C, *spatial) on the network's scale."""
    if norm.get("input_mode") == "per_image":
        return sample_range(sample, norm.get("percentiles", PERCENTILES))
    return np.asarray(norm["input"]["low"], np.float32), np.asarray(norm["input"]["high"], np.float32)


def output_range(norm: dict[str, Any], in_lo: np.ndarray, in_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``lo, hi`` that take the network's output back to the target's units."""
    placed = norm.get("target_in_input")
    if placed is not None:
        a, b = np.asarray(placed["low"], np.float32), np.asarray(placed["high"], np.float32)
        span = np.asarray(in_hi, np.float32) - np.asarray(in_lo, np.float32)
        return (in_lo + a * span).astype(np.float32), (in_lo + b * span).astype(np.float32)
    target = norm.get("target")
    if target is None:
        return in_lo, in_hi
    return np.asarray(target["low"], np.float32), np.asarray(target["high"], np.float32)
