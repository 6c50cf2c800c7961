"""CARE's fresh noise: inputs remade from the target and the pair's own residuals, level by level."""
from __future__ import annotations

import numpy as np

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.data.renoise import ResidualNoise, auto_share, block_mean, structure_ratio
from napari_dlmicro.core.data.samples import PatchSampler
from napari_dlmicro.core.models.restoration.settings import TrainSettings

EVERYWHERE = (slice(None), slice(None), slice(None))


def test_fresh_inputs_have_the_pairs_noise_at_every_signal_level():
    noisy, clean = noisy_nuclei_arrays()
    fresh = ResidualNoise([noisy[None]], [clean[None]], (1, 1)).draw(0, EVERYWHERE, np.random.default_rng(0))[0]
    assert fresh.shape == noisy.shape and not np.allclose(fresh, noisy)
    for lo, hi in ((0, 20), (60, 120), (120, 256)):  # dark background to bright nuclei: shot noise grows
        at = (clean >= lo) & (clean < hi)
        real, made = noisy[at] - clean[at], fresh[at] - clean[at]
        assert abs(made.mean() - real.mean()) < 0.15 * real.std()
        assert abs(made.std() / real.std() - 1) < 0.15
    assert np.corrcoef((noisy - clean).ravel(), (fresh - clean).ravel())[0, 1] < 0.2  # a new draw, not a copy


def test_an_upsampling_pairs_signal_is_the_target_averaged_onto_the_input_grid():
    rng = np.random.default_rng(1)
    high = rng.random((1, 64, 64)).astype(np.float32)
    low = block_mean(high, (2, 2)) + 0.01 * rng.standard_normal((1, 32, 32)).astype(np.float32)
    assert np.allclose(block_mean(high, (2, 2))[0, 0, 0], high[0, :2, :2].mean())
    fresh = ResidualNoise([low], [high], (2, 2)).draw(0, (slice(None), slice(4, 20), slice(8, 24)), rng)
    assert fresh.shape == (1, 16, 16)
    assert np.abs(fresh - block_mean(high, (2, 2))[:, 4:20, 8:24]).max() < 0.06


def test_the_sampler_remakes_inputs_and_keeps_targets():
    noisy, clean = noisy_nuclei_arrays()
    x, y = noisy[None, :128, :128], clean[None, :128, :128]
    plain = PatchSampler([x], [y], (32, 32), augment=False, seed=3)
    remade = PatchSampler([x], [y], (32, 32), augment=False, seed=3, renoise=1.0)
    (xa, ya), (xb, yb) = plain.batch(8), remade.batch(8)
    assert xb.shape == xa.shape and yb.shape == ya.shape and not np.allclose(xa, xb)
    assert np.abs(xb - yb).mean() > 0.5 * np.abs(xa - ya).mean()  # still noisy inputs
    half = PatchSampler([x], [y], (32, 32), augment=False, seed=3, renoise=0.5)
    assert half.noise is not None and PatchSampler([x], None, (32, 32), renoise=1.0).noise is None


def test_renoise_is_a_care_setting_only():
    assert "renoise" in TrainSettings(kind="care").saved()
    assert "renoise" not in TrainSettings(kind="n2v").saved()


def test_auto_remakes_inputs_only_where_pairs_differ_by_noise_alone():
    from scipy.ndimage import gaussian_filter

    noisy, clean = noisy_nuclei_arrays()
    share, why = auto_share([noisy[None]], [clean[None]], (1, 1))
    assert share == 1.0 and "noise alone" in why
    rng = np.random.default_rng(2)
    blurred = gaussian_filter(clean, 2.0) + 2.0 * rng.standard_normal(clean.shape).astype(np.float32)
    share, why = auto_share([blurred[None]], [clean[None]], (1, 1))
    assert share == 0.0 and "more than noise" in why
    brighter = 3.0 * noisy + 40.0  # another gain and offset is no structure
    assert structure_ratio([brighter[None]], [clean[None]], (1, 1)) < 1.1


def test_care_training_says_what_it_chose_and_saves_it(tmp_path):
    from napari_dlmicro.core.models.restoration.network import load_restoration
    from napari_dlmicro.core.models.restoration.train import train_restoration
    from napari_dlmicro.core.runtime.events import Notice, run_to_end

    noisy, clean = noisy_nuclei_arrays()
    events = []
    settings = TrainSettings(kind="care", patch=32, batch_size=4, filters=8, depth=2, steps_per_epoch=2, epochs=1,
                             device="cpu")
    run_to_end(train_restoration([noisy[:96, :96]], [clean[:96, :96]], settings, save_to=tmp_path / "m"),
               events.append)
    assert any(isinstance(e, Notice) and "Fresh noise 1" in e.message for e in events)
    assert load_restoration(tmp_path / "m").config["training"]["renoise"] == 1.0
    run_to_end(train_restoration([noisy[:96, :96]], [clean[:96, :96]],
                                 TrainSettings(**{**vars(settings), "renoise": 0.0}), save_to=tmp_path / "n"))
    assert load_restoration(tmp_path / "n").config["training"]["renoise"] == 0.0
