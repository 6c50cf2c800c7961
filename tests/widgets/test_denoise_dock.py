"""The Denoising dock end to end in a real viewer: train, preview, apply, quality, cancel."""
from __future__ import annotations

import numpy as np
import pytest
import torch._dynamo  # noqa: F401  (import before Qt starts: importing it later crashes under offscreen Qt here)

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays


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


def test_train_preview_apply_and_quality(dock, qtbot):
    viewer, w = dock
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
    w.apply_btn.click()  # a re-run updates the same layer, which keeps the last result meanwhile
    assert np.array_equal(viewer.layers["noisy [denoised]"].data, first)
    qtbot.waitUntil(lambda: w.job is None, timeout=60_000)
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
