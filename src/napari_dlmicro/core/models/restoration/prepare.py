"""Training data for Noise2Void and CARE: checked, cut into samples, normalised, and a fresh model to fit them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from napari_dlmicro.core.data.samples import channel_range, check_image, fit_patch, normalise, to_samples
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.restoration import care, intensity
from napari_dlmicro.core.models.restoration.network import RestorationModel, build_model
from napari_dlmicro.core.models.restoration.settings import TrainSettings
from napari_dlmicro.core.models.restoration.upsample import MIN_Z_PLANES


@dataclass
class Prepared:
    """What a restoration run trains on: samples on the network's scale, a fresh model, the patch, notices.

    ``back`` holds, per sample, the per-channel ``lo, hi`` that take the
    network's output for it back to the target's units (for previews).
    """

    samples: list[np.ndarray]
    targets: list[np.ndarray] | None
    model: RestorationModel
    patch: tuple[int, ...]
    notices: list[str]
    back: list[tuple[np.ndarray, np.ndarray]]


def prepare_training(images: Sequence[np.ndarray], targets: Sequence[np.ndarray] | None, s: TrainSettings,
                     names: Sequence[str] | None = None) -> Prepared:
    """Checked, normalised training data and a fresh model with its normalisation config.

    CARE pairs are checked first (:func:`.care.check_pairs`), so a bad pair is
    refused before anything is computed; ``names`` name them in the messages.
    """
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
    factors = None
    if s.kind == "care":
        if targets is None:
            raise UserError("CARE needs target images", "pick a target layer, or a targets folder")
        targets = [np.asarray(t) for t in targets]
        factors = care.check_pairs(images, targets, s.axes, s.upsample, names)
        for i, t in enumerate(targets):
            check_image(t, f"the target of {names[i]}" if names else "a target image")
    samples, layout = [], None
    for im in images:
        part, layout = to_samples(im, s.axes, s.channels)
        samples += part
    tsamples = None
    if s.kind == "care":
        tsamples = [x for t in targets for x in to_samples(t, s.axes, s.channels)[0]]
    ndim = len(layout.spatial)
    n_ch = samples[0].shape[0]
    if s.kind == "care":
        samples, tsamples, norm, back = intensity.normalise_pairs(samples, tsamples, s.intensity)
    else:
        lo, hi = channel_range(samples)
        norm = {"percentiles": [1.0, 99.8], "input_mode": "dataset", "input": {"low": lo, "high": hi}}
        samples = [normalise(x, lo, hi) for x in samples]
        back = [(np.asarray(lo, np.float32), np.asarray(hi, np.float32))] * len(samples)
    title = "Noise2Void" if s.kind == "n2v" else "CARE"
    extra = {"normalization": norm, "channels": s.channels, "input_axes": layout.axes,
             "description": f"{title} {layout.spatial}, trained with napari-dlmicro"}
    torch.manual_seed(s.seed)  # the seed fixes the network's start, as in every other kind's training
    model = build_model(s.kind, ndim, n_ch, s.depth or (3 if ndim == 2 else 2), s.filters, extra,
                        n2v2=s.kind == "n2v" and s.strategy == "n2v2" and s.n2v2_net, factors=factors)
    grown_z = model.config.get("upsample", {}).get("axes") == "Z"
    minimum = (MIN_Z_PLANES, 8, 8) if grown_z else 8
    # the patch size counts the target's pixels: a step of an upsampling model costs what one of any other does
    wanted = tuple(max(1, s.patch // f) for f in model.factors)
    patch = fit_patch(wanted, [x.shape[1:] for x in samples], model.div_by, minimum)
    return Prepared(samples, tsamples, model, patch, notices, back)
