"""Training data for Noise2Void and CARE: checked, cut into samples, normalised, and a fresh model to fit them."""
from __future__ import annotations

from typing import Any

import numpy as np

from napari_dlmicro.core.data.normalize import percentile_range
from napari_dlmicro.core.data.samples import channel_range, check_image, fit_patch, normalise, to_samples
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.restoration import care
from napari_dlmicro.core.models.restoration.network import build_model
from napari_dlmicro.core.models.restoration.settings import TrainSettings


def prepare_training(images, targets, s: TrainSettings):
    """Normalised input and target samples, a fresh model with its normalisation config, the patch, notices."""
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
    method = "Noise2Void" if s.kind == "n2v" else "CARE"
    extra = {"normalization": norm, "channels": s.channels, "input_axes": layout.axes,
             "description": f"{method} {layout.spatial}, trained with napari-dlmicro"}
    model = build_model(s.kind, ndim, n_ch, s.depth or (3 if ndim == 2 else 2), s.filters, extra,
                        n2v2=s.kind == "n2v" and s.strategy == "n2v2" and s.n2v2_net)
    patch = fit_patch((s.patch,) * ndim, [x.shape[1:] for x in samples], model.div_by)
    return samples, tsamples, model, patch, notices
