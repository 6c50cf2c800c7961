"""CARE: supervised pairs, shared model folder, bad pairs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.restoration import psnr, quality
from napari_dlmicro.core.io.files import pair_by_name
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.models.restoration.care import check_pairs
from napari_dlmicro.core.models.restoration.network import load_restoration
from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
from napari_dlmicro.core.runtime.events import run_to_end

FAST = dict(kind="care", patch=32, batch_size=8, filters=16, steps_per_epoch=10, device="cpu")


def test_care_learns_noisy_to_clean(tmp_path):
    noisy, clean = noisy_nuclei_arrays()
    x, y = noisy[:128, :128], clean[:128, :128]
    # a fixed number of steps, not minutes: on a busy machine a time budget buys too few steps to learn
    settings = TrainSettings(epochs=6, **FAST)
    result = run_to_end(train_restoration([x], [y], settings, save_to=tmp_path / "care"))
    model = load_restoration(tmp_path / "care")
    assert model.kind == "care" and model.config["normalization"]["input_mode"] == "per_image"
    out = denoise(x, model)
    assert out.dtype == np.float32
    assert psnr(y, out) > psnr(y, x) + 2.0
    assert [row["val_loss"] for row in result.history]


def test_pairs_of_different_shapes_or_counts():
    a, b = np.zeros((32, 32)), np.zeros((32, 30))
    with pytest.raises(UserError, match="its target is"):
        check_pairs([a], [b])
    with pytest.raises(UserError, match="one target per input"):
        check_pairs([a, a], [a])
    with pytest.raises(UserError, match="needs target"):
        run_to_end(train_restoration([np.random.rand(32, 32)], None, TrainSettings(epochs=1, **FAST)))


def test_pairs_matched_by_name():
    def match_pairs(inputs, targets):
        return pair_by_name(inputs, targets, complete=True, names=("input", "target"))

    pairs = match_pairs([Path("a/x.tif"), Path("a/y.tif")], [Path("b/y.tif"), Path("b/x.tif")])
    assert [(p.name, q.parent.name) for p, q in pairs] == [("x.tif", "b"), ("y.tif", "b")]
    with pytest.raises(UserError, match="no target of the same file name"):
        match_pairs([Path("a/x.tif")], [Path("b/z.tif")])


def test_quality_metrics():
    rng = np.random.default_rng(0)
    truth = rng.random((64, 64))
    q = quality(truth, truth + 0.01 * rng.standard_normal(truth.shape))
    assert q["psnr"] > 35 and 0.9 < q["ssim"] <= 1.0
    with pytest.raises(UserError, match="same shape"):
        psnr(truth, truth[:10])
