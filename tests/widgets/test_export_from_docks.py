"""'Export to bioimage.io…' next to the model lists of the Segmentation and Denoising docks, in a real viewer; the
engine choice in both docks."""
from __future__ import annotations

import numpy as np
import pytest
import torch._dynamo  # noqa: F401  (import before Qt starts: importing it later crashes under offscreen Qt here)

from napari_dlmicro.core.models.bioimageio.load import kind_of_package
from napari_dlmicro.widgets.denoise import DenoiseWidget


@pytest.fixture
def segmentation(make_napari_viewer, trained_stardist, right_half):
    viewer = make_napari_viewer()
    viewer.add_image(right_half[0][:128, :128], name="nuclei")
    _, widget = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    widget._refresh_models(select=str(trained_stardist))
    return viewer, widget


def test_segmentation_dock_exports_its_model(segmentation, qtbot, tmp_path):
    _, widget = segmentation
    exporter = widget.exporter
    assert exporter.button.text() == "Export to bioimage.io…"
    assert exporter.prepare()
    exporter.state.out = str(tmp_path / "stardist.zip")
    exporter.state.authors = "Ada Tester"
    handle = exporter.start()
    assert handle is not None and not exporter.button.isEnabled()
    qtbot.waitUntil(lambda: exporter.handle is None, timeout=300_000)
    assert (tmp_path / "stardist.zip").is_file() and kind_of_package(tmp_path / "stardist.zip") == "stardist"
    assert "written" in widget.status.text() and exporter.button.isEnabled()


def test_export_without_authors_is_refused_with_a_message(segmentation, tmp_path):
    _, widget = segmentation
    widget.exporter.prepare()
    widget.exporter.state.out = str(tmp_path / "x.zip")
    widget.exporter.state.authors = ""
    widget.exporter.state.citations = "no reference here"
    assert widget.exporter.start() is None and not (tmp_path / "x.zip").exists()


def test_engine_choice_in_the_segmentation_dock(segmentation, qtbot):
    viewer, widget = segmentation
    widget.engine_combo.setCurrentText("onnxruntime")
    assert widget.state.engine == "onnxruntime"
    assert widget.build_job().engine == "onnxruntime"
    widget.run()
    qtbot.waitUntil(lambda: widget.handle is None, timeout=120_000)
    assert np.asarray(viewer.layers["nuclei [test-stardist]"].data).max() > 0


def test_denoising_dock_exports_and_applies_on_the_chosen_engine(make_napari_viewer, trained_n2v, noisy_crop, qtbot,
                                                               tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    (store / trained_n2v.name).symlink_to(trained_n2v, target_is_directory=True)
    monkeypatch.setenv("DLMICRO_MODELS", str(store))
    viewer = make_napari_viewer()
    viewer.add_image(noisy_crop[0], name="noisy")
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.models.setCurrentText(trained_n2v.name)
    assert widget.exporter.prepare()
    widget.exporter.state.out = str(tmp_path / "n2v.zip")
    widget.exporter.state.authors = "Ada Tester"
    widget.exporter.start()
    qtbot.waitUntil(lambda: widget.exporter.handle is None, timeout=300_000)
    assert (tmp_path / "n2v.zip").is_file()
    widget.engine_combo.setCurrentText("onnxruntime")
    widget.load_model()
    widget.apply()
    qtbot.waitUntil(lambda: widget.job is None or widget.job.finished, timeout=120_000)
    qtbot.waitUntil(lambda: "noisy [denoised]" in viewer.layers, timeout=60_000)
    assert widget.model.runner is not None and widget.model.runner.last_engine == "onnxruntime"
