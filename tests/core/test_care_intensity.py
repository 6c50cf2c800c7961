"""CARE's intensity models: the target's units on images it has not seen; each kind saves only its own settings."""
from __future__ import annotations

import numpy as np
import pytest

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.models.restoration.intensity import input_range, output_range, sample_range
from napari_dlmicro.core.models.restoration.network import load_restoration
from napari_dlmicro.core.models.restoration.settings import CARE_ONLY, N2V_ONLY
from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
from napari_dlmicro.core.runtime.events import run_to_end

FAST = dict(patch=32, batch_size=4, filters=8, steps_per_epoch=5, epochs=1, device="cpu")


@pytest.fixture(scope="module")
def halves():
    noisy, clean = noisy_nuclei_arrays()
    return noisy[:96, :96].copy(), clean[:96, :96].copy(), noisy[256:352, :96].copy()


def care(halves, **settings):
    x, y, _ = halves
    return run_to_end(train_restoration([x], [y], TrainSettings(kind="care", **{**FAST, **settings}))).model


def test_relative_output_follows_the_image_it_is_given(halves):
    model = care(halves)
    assert model.config["normalization"]["intensity"] == "relative"
    held_out = halves[2]
    once = denoise(held_out, model)
    # twice the exposure, or an offset: the same image to a relative model, so the same output on that scale
    np.testing.assert_allclose(denoise(2 * held_out, model), 2 * once, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(denoise(held_out + 50, model), once + 50, rtol=1e-4, atol=1e-2)


def test_absolute_output_stays_in_the_training_targets_units(halves):
    model = care(halves, intensity="absolute")
    norm = model.config["normalization"]
    assert norm["intensity"] == "absolute" and norm["input_mode"] == "dataset"
    lo, hi = input_range(norm, halves[2][None])
    assert lo.tolist() == pytest.approx(norm["input"]["low"]) and hi.tolist() == pytest.approx(norm["input"]["high"])
    assert output_range(norm, lo, hi)[1].tolist() == pytest.approx(norm["target"]["high"])


def test_models_saved_before_keep_their_mapping():
    # an older CARE config: inputs by their own percentiles, outputs with the training targets' range
    norm = {"percentiles": [1.0, 99.8], "input_mode": "per_image", "target": {"low": [5.0], "high": [200.0]}}
    sample = np.linspace(0, 100, 1000, dtype=np.float32).reshape(1, 10, 100)
    lo, hi = input_range(norm, sample)
    assert lo[0] == pytest.approx(1.0, abs=0.01) and hi[0] == pytest.approx(99.8, abs=0.01)
    assert output_range(norm, lo, hi)[0].tolist() == [5.0]


def test_a_channel_flat_between_its_percentiles_still_gets_a_range():
    sample = np.zeros((1, 32, 32), np.float32)
    sample[0, 0, 0] = 1.0  # one bright pixel: the 99.8th percentile is still 0
    lo, hi = sample_range(sample)
    assert hi[0] > lo[0]


def test_each_kind_saves_only_its_own_settings(halves, tmp_path):
    x, y, _ = halves
    run_to_end(train_restoration([x], [y], TrainSettings(kind="care", **FAST), save_to=tmp_path / "care"))
    run_to_end(train_restoration([x], None, TrainSettings(kind="n2v", **FAST), save_to=tmp_path / "n2v"))
    care_cfg = load_restoration(tmp_path / "care").config["training"]
    n2v_cfg = load_restoration(tmp_path / "n2v").config["training"]
    assert not set(N2V_ONLY) & set(care_cfg) and set(CARE_ONLY) <= set(care_cfg)
    assert not set(CARE_ONLY) & set(n2v_cfg) and set(N2V_ONLY) <= set(n2v_cfg)
