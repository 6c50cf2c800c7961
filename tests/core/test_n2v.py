"""Noise2Void: masking, training lowers the error, cancel, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.restoration import psnr
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.models.restoration import n2v
from napari_dlmicro.core.models.restoration.network import build_model, load_restoration, save_restoration
from napari_dlmicro.core.models.restoration.train import TrainSettings, lr_at, train_restoration
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import (
    Metrics,
    Preview,
    Progress,
    run_to_end,
)

FAST = dict(kind="n2v", patch=32, batch_size=8, filters=16, steps_per_epoch=10, learning_rate=2e-3, device="cpu")


@pytest.fixture(scope="module")
def crop():
    noisy, clean = noisy_nuclei_arrays()
    return noisy[100:228, 100:228].copy(), clean[100:228, 100:228].copy()


def test_mask_is_stratified_and_replaces_from_neighbours():
    gen = torch.Generator().manual_seed(0)
    mask = n2v.random_mask((2, 1, 64, 64), 0.02, gen)
    assert 0.01 < mask.float().mean() < 0.04
    x = torch.rand(2, 1, 64, 64, generator=gen)  # continuous values: no neighbour equals the pixel
    for strategy in ("n2v", "n2v2"):
        out = n2v.apply_mask(x, mask, strategy, radius=2, generator=gen)
        changed = out[mask] != x[mask]
        assert changed.all(), strategy  # a masked pixel never keeps its own value
        assert torch.equal(out[~mask], x[~mask])


def test_n2v2_median_excludes_centre():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 100.0  # a hot pixel: its own value must not leak into the replacement
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[0, 0, 4, 4] = True
    assert n2v.apply_mask(x, mask, "n2v2")[0, 0, 4, 4] == 0.0


def test_sealed_mask_never_replaces_from_another_masked_pixel():
    x = torch.zeros(64, 1, 9, 9)
    x[:, 0, 4, 4] = 100.0  # a hot masked pixel: its noise must not reach its masked neighbour
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 0, 4, 4] = mask[:, 0, 4, 5] = True
    gen = torch.Generator().manual_seed(0)
    assert (n2v.apply_mask(x, mask, "n2v", generator=gen)[:, 0, 4, 5] == 0).all()
    leaky = n2v.apply_mask(x, mask, "n2v", generator=gen, sealed=False)[:, 0, 4, 5]
    assert (leaky == 100).any()  # the leak the seal closes


def test_mask_3d():
    x = torch.randn(1, 1, 16, 16, 16)
    inp, mask = n2v.n2v_batch(x, 0.05, "n2v2")
    assert mask.any() and torch.equal(inp[~mask], x[~mask])


def test_lr_schedule_warms_up_and_decays():
    assert lr_at(0.0, 1.0) < lr_at(0.05, 1.0)
    assert lr_at(0.05, 1.0) == pytest.approx(1.0)
    assert lr_at(1.0, 1.0) == pytest.approx(0.02)


def test_learning_rate_defaults_per_kind():
    assert TrainSettings().start_lr == pytest.approx(1e-3)
    assert TrainSettings(kind="care").start_lr == pytest.approx(1e-3)
    assert TrainSettings(kind="care", learning_rate=2e-3).start_lr == pytest.approx(2e-3)


def test_training_raises_psnr(crop, tmp_path):
    noisy, clean = crop
    events = []
    # a step budget, not minutes: the same learning however busy the machine is (about 3 s when idle)
    settings = TrainSettings(epochs=8, preview_every_s=0.5, **FAST)
    result = run_to_end(train_restoration([noisy], None, settings, save_to=tmp_path / "m",
                                          preview=(0, (slice(0, 64), slice(0, 64)))), events.append)
    out = denoise(noisy, result.model)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    gain = psnr(clean, out) - psnr(clean, noisy)
    assert gain > 4.0, gain
    assert any(isinstance(e, Metrics) and "val_loss" in e.values for e in events)
    assert any(isinstance(e, Progress) and e.eta_s is not None for e in events)
    previews = [e for e in events if isinstance(e, Preview)]
    assert all(p.kind == "image" and p.data.shape == (64, 64) for p in previews)
    loaded = load_restoration(tmp_path / "m")
    assert [row["val_loss"] for row in loaded.config["history"]] and loaded.config["normalization"]["input"]["low"]
    assert loaded.config["training"]["learning_rate"] == pytest.approx(FAST["learning_rate"])
    # outputs are in the image's units (up to ~150 here): float32 rounding, which differs between the trained
    # network's channels-last kernels and the loaded one's, is relative
    np.testing.assert_allclose(denoise(noisy, loaded), out, rtol=1e-5, atol=1e-4)


def test_n2v2_network_blur_pool_without_top_skip(crop, tmp_path):
    from napari_dlmicro.core.nets.unet import BlurPool, UNet, UNetConfig

    default = UNet(UNetConfig())
    assert isinstance(default.pool, torch.nn.MaxPool2d)  # the default layout is untouched (Keras weights)
    pooled = BlurPool(2, (2, 2))(torch.ones(1, 3, 8, 6))
    assert pooled.shape == (1, 3, 4, 3) and torch.allclose(pooled, torch.ones_like(pooled))
    settings = TrainSettings(epochs=1, strategy="n2v2", n2v2_net=True, **{k: v for k, v in FAST.items()})
    result = run_to_end(train_restoration([crop[0]], None, settings, save_to=tmp_path / "m2"))
    unet = result.model.config["unet"]
    assert unet["pool_mode"] == "blur" and unet["top_skip"] is False
    loaded = load_restoration(tmp_path / "m2")
    np.testing.assert_allclose(denoise(crop[0], loaded), denoise(crop[0], result.model), rtol=1e-5, atol=1e-4)


def test_cancel_keeps_a_loadable_model(crop, tmp_path):
    noisy, _ = crop
    token = CancelToken()
    job = train_restoration([noisy], None, TrainSettings(minutes=5, **FAST), token, save_to=tmp_path / "m")
    for ev in job:
        if isinstance(ev, Metrics):
            token.cancel()
    model = load_restoration(tmp_path / "m")
    assert model.config["stopped"] == "cancelled"
    assert denoise(noisy, model).shape == noisy.shape


def test_time_series_and_channels(crop):
    noisy, _ = crop
    stack = np.stack([noisy[:64, :64], noisy[64:, 64:]])  # TYX
    result = run_to_end(train_restoration([stack], None, TrainSettings(epochs=1, axes="TYX", **FAST)))
    assert denoise(stack, result.model, axes="TYX").shape == stack.shape
    cyx = np.stack([noisy, noisy * 2])
    joint = run_to_end(train_restoration([cyx], None, TrainSettings(epochs=1, axes="CYX", channels="joint", **FAST)))
    assert joint.model.n_channels == 2
    assert denoise(cyx, joint.model, axes="CYX").shape == cyx.shape


def test_3d_training_and_2d_model_on_3d_is_a_clear_error():
    vol = np.random.default_rng(0).poisson(5, (16, 32, 32)).astype(np.float32)
    result = run_to_end(train_restoration([vol], None, TrainSettings(epochs=1, **{**FAST, "patch": 16})))
    assert result.model.ndim == 3
    assert denoise(vol, result.model).shape == vol.shape
    model2d = build_model("n2v", 2, 1, filters=8, extra={"normalization": {"input": {"low": [0], "high": [1]}}})
    with pytest.raises(UserError, match="2D .* but the image is 3D"):
        denoise(vol, model2d, axes="ZYX")


def test_constant_image_is_refused():
    with pytest.raises(UserError, match="constant"):
        run_to_end(train_restoration([np.full((64, 64), 7.0)], None, TrainSettings(epochs=1, **FAST)))


def test_image_smaller_than_a_patch():
    small = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    events = []
    run_to_end(train_restoration([small], None, TrainSettings(epochs=1, **{**FAST, "patch": 64})), events.append)
    assert any("shrunk" in getattr(e, "message", "") for e in events)
    with pytest.raises(UserError, match="smaller than the smallest patch"):
        run_to_end(train_restoration([small[:6]], None, TrainSettings(epochs=1, **FAST)))


def test_nan_pixels_are_filled_for_training_and_kept_in_output(crop):
    noisy = crop[0].copy()
    noisy[10:12, 10:20] = np.nan
    events = []
    result = run_to_end(train_restoration([noisy], None, TrainSettings(epochs=1, **FAST)), events.append)
    assert any("NaN" in getattr(e, "message", "") for e in events)
    out = denoise(noisy, result.model)
    assert np.isnan(out[10:12, 10:20]).all() and np.isfinite(out[20:]).all()


def test_other_model_kind_is_refused(tmp_path):
    model = build_model("n2v", 2, 1, filters=8)
    model.config["kind"] = "stardist"
    save_restoration(model, tmp_path / "sd")
    with pytest.raises(UserError, match="stardist model, which cannot denoise"):
        load_restoration(tmp_path / "sd")


def test_out_of_memory_is_a_clear_error(crop, monkeypatch):
    from napari_dlmicro.core.models.restoration.network import RestorationNet

    def boom(self, x):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(RestorationNet, "forward", boom)
    with pytest.raises(UserError, match="ran out of memory"):
        run_to_end(train_restoration([crop[0]], None, TrainSettings(epochs=1, **FAST)))


def test_thread_tuner_keeps_the_faster_count(monkeypatch):
    from types import SimpleNamespace

    from napari_dlmicro.core.runtime import threads as cpu_tuning
    from napari_dlmicro.core.runtime.threads import ThreadTuner

    now = [0.0]  # a simulated clock: each step takes what we say it takes
    monkeypatch.setattr(cpu_tuning, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    before = torch.get_num_threads()
    tuner = ThreadTuner(candidates=(2, 1), trial_steps=3, recheck_s=60)
    for _ in range(6):
        tuner.before_step()
        now[0] += 0.03 if tuner.current == 2 else 0.001  # pretend two threads are slower here
        tuner.after_step()
    assert tuner.best == 1 and tuner.current == 1
    torch.set_num_threads(before)


@pytest.mark.parametrize("keep", ["auto", "best"])
def test_a_spent_budget_ends_on_the_last_weights_unless_best_is_asked(crop, keep):
    noisy, _ = crop
    result = run_to_end(train_restoration([noisy], None, TrainSettings(epochs=4, keep=keep, **FAST)))
    losses = [row["val_loss"] for row in result.history]
    assert result.stopped == "budget" and len(losses) == 4
    assert result.best_val_loss == (losses[-1] if keep == "auto" else min(losses))


def test_the_last_stretch_of_a_run_trains_in_full_precision(crop, monkeypatch):
    import contextlib

    from napari_dlmicro.core.models.restoration import train as restoration_train

    asked = []

    def record(device, cpu_bf16=False, enabled=True):
        asked.append((cpu_bf16, enabled))
        return contextlib.nullcontext()

    monkeypatch.setattr(restoration_train, "training_autocast", record)
    run_to_end(train_restoration([crop[0]], None, TrainSettings(epochs=2, fp32_tail=0.3, **FAST)))
    assert len(asked) == 20 and all(bf16 for bf16, _ in asked)
    assert [enabled for _, enabled in asked] == [True] * 14 + [False] * 6


@pytest.mark.parametrize("avx512_bf16, amx, native", [(False, False, False), (True, False, True), (False, True, True)])
def test_bf16_counts_as_native_only_with_its_instructions(monkeypatch, avx512_bf16, amx, native):
    from napari_dlmicro.core.runtime import devices

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    devices.cpu_has_bf16.cache_clear()
    try:
        assert devices.cpu_has_bf16() is native
    finally:
        devices.cpu_has_bf16.cache_clear()
