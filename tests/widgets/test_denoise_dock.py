"""The Denoising dock end to end in a real viewer: train, preview, apply, quality, cancel."""
from __future__ import annotations

import numpy as np
import pytest

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.runtime.events import Preview, PreviewKind


@pytest.fixture()
def dock(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("DLMICRO_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("DLMICRO_CONFIG", str(tmp_path / "config"))
    from napari_dlmicro.widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    noisy, clean = noisy_nuclei_arrays()
    viewer.add_image(clean[:96, :96], name="clean")
    viewer.add_image(noisy[:96, :96], name="noisy", scale=(0.5, 0.5))
    w = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.image.setCurrentText("noisy")
    w.patch.setValue(32)
    w.batch.setValue(4)
    return viewer, w


def test_train_preview_apply_and_quality(dock, qtbot, monkeypatch):
    from napari_dlmicro.widgets import denoise as dock_module

    viewer, w = dock
    views = []
    real_apply = dock_module.apply_job

    def apply_job(*args, tta, **kwargs):
        views.append(tta)
        return real_apply(*args, tta=tta, **kwargs)

    monkeypatch.setattr(dock_module, "apply_job", apply_job)
    w.minutes.setValue(0.1)
    w.train_btn.click()
    qtbot.waitUntil(lambda: w.job is None, timeout=90_000)
    assert w.model is not None and w.plot.x
    assert "noisy [preview]" in viewer.layers
    w.truth.setCurrentText("clean")
    w.apply_btn.click()
    qtbot.waitUntil(lambda: "noisy [denoised]" in viewer.layers and w.job is None, timeout=60_000)
    out = viewer.layers["noisy [denoised]"]
    assert out.data.dtype == np.float32 and out.data.shape == (96, 96)
    assert tuple(out.scale) == (0.5, 0.5)
    assert "PSNR" in w.quality.text()
    first = out.data.copy()
    moved = []
    out.events.scale.connect(moved.append)
    out.events.translate.connect(moved.append)
    w.views_combo.setCurrentText("1")  # the re-run for speed: one view
    w.apply_btn.click()  # a re-run updates the same layer, which keeps the last result meanwhile
    assert np.array_equal(viewer.layers["noisy [denoised]"].data, first)
    qtbot.waitUntil(lambda: w.job is None, timeout=60_000)
    assert not moved  # the same placement: no transform change re-slices the viewer
    assert views == [True, False]  # 8 views by default, then the one chosen
    assert [layer.name for layer in viewer.layers].count("noisy [denoised]") == 1
    w._refresh_models()
    assert [w.models.itemText(i) for i in range(w.models.count())] == ["n2v_model"]


def test_cancel_keeps_best_model(dock, qtbot):
    viewer, w = dock
    w.minutes.setValue(5)
    w.train_btn.click()
    qtbot.waitUntil(lambda: len(w.plot.x) >= 1, timeout=90_000)
    w.cancel_btn.click()
    qtbot.waitUntil(lambda: w.job is None, timeout=30_000)
    assert w.model is not None
    assert "best model so far" in w.status.text()


def test_care_from_folder_pairs_for_a_number_of_epochs(dock, qtbot, tmp_path):
    import tifffile

    viewer, w = dock
    noisy, clean = noisy_nuclei_arrays()
    inputs, targets = tmp_path / "low", tmp_path / "high"
    inputs.mkdir(), targets.mkdir()
    for i in range(2):
        tifffile.imwrite(inputs / f"p{i}.tif", noisy[i * 64:(i + 1) * 64, :64])
        tifffile.imwrite(targets / f"p{i}.tif", clean[i * 64:(i + 1) * 64, :64])
    w.kind.setCurrentText("care")
    w.train_btn.click()  # neither a target layer nor folders: a message, no job
    assert w.job is None and "target" in w.status.text()
    w.form.set_pair_folders(str(inputs), str(targets))
    w.epochs.setValue(1)
    assert not w.minutes.isEnabled()
    w.train_btn.click()
    qtbot.waitUntil(lambda: w.job is None, timeout=90_000)
    assert w.model is not None and w.model.kind == "care"
    assert w.model.config["steps"] == 50  # one epoch of 50 steps, not the time budget
    assert "trained" in w.status.text()


def test_settings_are_remembered(dock, make_napari_viewer):
    from napari_dlmicro.widgets.denoise import DenoiseWidget

    viewer, w = dock
    w.epochs.setValue(7)
    w.form.save()
    again = DenoiseWidget(viewer)
    assert again.epochs.value() == 7 and again.patch.value() == 32
    assert again.form.train_settings(None, None).learning_rate is None  # left at the kind's default


def test_the_kind_chosen_on_the_model_shows_in_the_dock_with_cares_settings(dock):
    _, w = dock
    w.form.state.choose_kind("care")
    assert w.form.kind.currentText() == "care" and w.form.target.isEnabled()
    assert "renoise" in w.form.settings.fields and "mask_fraction" not in w.form.settings.fields
    assert w.form.train_settings(None, None).renoise is None  # empty: chosen from the pairs when training starts
    w.form.kind.setCurrentText("n2v")
    assert w.form.state.kind == "n2v" and not w.form.target.isEnabled()


def test_care_upsampling_trains_and_applies_at_the_larger_size_with_scores(dock, qtbot):
    viewer, w = dock
    _, clean = noisy_nuclei_arrays()
    high = clean[:96, :96]
    low = high.reshape(48, 2, 48, 2).mean(axis=(1, 3)).astype(np.float32)
    viewer.add_image(low, name="low", scale=(1.0, 1.0), translate=(4.0, 0.0))
    w.image.setCurrentText("low")
    w.kind.setCurrentText("care")
    upsample = w.form.field("upsample")
    assert [upsample.itemText(i) for i in range(upsample.count())] == ["1", "2", "4"]
    upsample.setCurrentText("2")
    w.target.setCurrentText("clean")
    w.epochs.setValue(1)
    w.form.field("steps_per_epoch").setValue(5)
    w.train_btn.click()
    qtbot.waitUntil(lambda: w.job is None, timeout=90_000)
    assert w.model is not None and w.model.factors == (2, 2), w.status.text()
    # a snapshot of the upsampling model covers the field it was asked for, in its finer pixels
    w._show_preview(Preview(np.zeros((96, 96), np.float32), (slice(0, 96), slice(0, 96)), PreviewKind.IMAGE))
    preview = viewer.layers["low [preview]"]
    assert tuple(preview.scale) == (0.5, 0.5) and tuple(preview.translate) == pytest.approx((3.75, -0.25))
    w.truth.setCurrentText("clean")
    w.apply_btn.click()
    qtbot.waitUntil(lambda: w.job is None and "low [denoised]" in viewer.layers, timeout=60_000)
    out = viewer.layers["low [denoised]"]
    assert out.data.shape == (96, 96)
    assert tuple(out.scale) == (0.5, 0.5) and tuple(out.translate) == pytest.approx((3.75, -0.25))
    assert w.quality.text().count("scale-invariant") == 2, w.quality.text()
