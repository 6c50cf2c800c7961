"""The Denoising dock end to end in a real viewer: train, preview, apply, quality, cancel."""
from __future__ import annotations

import numpy as np
import torch._dynamo  # noqa: F401  (import before Qt starts: importing it later crashes under offscreen Qt here)
import pytest

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
    assert w.model is not None and w.plot.steps
    assert "noisy [preview]" in viewer.layers
    w.truth.setCurrentText("clean")
    w.apply_btn.click()
    qtbot.waitUntil(lambda: "noisy [denoised]" in viewer.layers and w.job is None, timeout=60_000)
    out = viewer.layers["noisy [denoised]"]
    assert out.data.dtype == np.float32 and out.data.shape == (96, 96)
    assert tuple(out.scale) == (0.5, 0.5)
    assert "PSNR" in w.quality.text()
    w._refresh_models()
    assert [w.models.itemText(i) for i in range(w.models.count())] == ["n2v_model"]


def test_cancel_keeps_best_model(dock, qtbot):
    viewer, w = dock
    w.minutes.setValue(5)
    w.train_btn.click()
    qtbot.waitUntil(lambda: len(w.plot.steps) >= 1, timeout=90_000)
    w.cancel_btn.click()
    qtbot.waitUntil(lambda: w.job is None, timeout=30_000)
    assert w.model is not None
    assert "best model so far" in w.status.text()
