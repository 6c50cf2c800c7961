"""The Segmentation dock in a real viewer: run, tiles, measurements, cancel, bad input."""
from __future__ import annotations

import numpy as np
import pytest
from stardist.matching import matching

from napari_dlmicro.core.errors import UserError


@pytest.fixture
def dock(make_napari_viewer, trained_stardist, right_half):
    viewer = make_napari_viewer()
    img, _ = right_half
    viewer.add_image(img, name="nuclei", scale=(0.5, 0.5))
    _, widget = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    widget._refresh_models(select=str(trained_stardist))
    widget.tile_spin.setValue(128)
    return viewer, widget


def _wait_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: widget.handle is None, timeout=timeout)


def test_run_makes_a_measured_labels_layer(dock, qtbot, right_half, tmp_path):
    viewer, widget = dock
    _, gt = right_half
    widget.run()
    assert widget.handle is not None
    _wait_idle(qtbot, widget)
    layer = viewer.layers["nuclei [test-stardist]"]
    assert layer.data.shape == gt.shape and tuple(layer.scale) == (0.5, 0.5)
    assert matching(gt, np.asarray(layer.data), thresh=0.5).f1 >= 0.3
    assert "area_um2" in layer.features.columns and len(layer.features) > 10
    assert "objects" in widget.count_label.text()
    widget.export_csv(str(tmp_path / "m.csv"))
    assert (tmp_path / "m.csv").read_text().startswith("label")
    # a re-run updates the same layer instead of adding another
    widget.run()
    _wait_idle(qtbot, widget)
    assert sum(lay.name.startswith("nuclei [") for lay in viewer.layers) == 1
    # once the user has corrected it with the brush, the next run leaves it and makes its own
    layer = viewer.layers["nuclei [test-stardist]"]
    layer.paint((3, 3), 999)
    widget.run()
    _wait_idle(qtbot, widget)
    assert viewer.layers["nuclei [test-stardist] (edited)"] is layer and layer.data[3, 3] == 999
    assert viewer.layers["nuclei [test-stardist]"] is not layer


def test_preview_segments_the_visible_field(dock, qtbot):
    viewer, widget = dock
    viewer.scene.camera.zoom = viewer.scene.camera.zoom * 4
    widget.preview()
    _wait_idle(qtbot, widget)
    assert "in view" in widget.count_label.text() or "in the image" in widget.count_label.text()


def test_cancel_mid_run_keeps_finished_tiles(dock, qtbot, right_half):
    viewer, widget = dock
    img, _ = right_half
    viewer.layers["nuclei"].data = np.tile(img, (3, 3))
    widget.tile_spin.setValue(128)
    widget.run()
    qtbot.waitUntil(lambda: "nuclei [test-stardist]" in viewer.layers, timeout=60_000)
    widget.cancel()
    _wait_idle(qtbot, widget, timeout=10_000)
    assert widget.status.text().startswith("Cancelled")
    assert widget.run_button.isEnabled()


def test_labels_layer_as_input_is_refused(dock, right_half):
    viewer, widget = dock
    _, gt = right_half
    labels = viewer.add_labels(gt, name="painted")
    before = labels.data.copy()
    with pytest.raises(UserError, match="not an image"):
        widget.build_job(labels)
    assert np.array_equal(labels.data, before)


def test_settings_are_remembered(dock, make_napari_viewer):
    viewer, widget = dock
    widget.low_spin.setValue(2.5)
    widget._remember()
    from napari_dlmicro.widgets.segmentation import SegmentationWidget

    again = SegmentationWidget(make_napari_viewer())
    assert again.low_spin.value() == 2.5
