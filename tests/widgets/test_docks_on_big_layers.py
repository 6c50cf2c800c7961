"""Docks that work in memory on a pyramid or a lazy layer: level 0 at full resolution, or a clear refusal.

numpy's view of a napari pyramid is its coarsest level: a dock that took
``np.asarray(layer.data)`` denoised or scored that, and a lazy layer of a
whole slide would have been read whole.
"""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.widgets import _lazy_layers
from napari_dlmicro.widgets._lazy_layers import held_data


def test_a_pyramid_gives_its_full_resolution_and_a_lazy_layer_too_big_is_refused(monkeypatch):
    image = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    pyramid = Image([image, image[::2, ::2]], multiscale=True, name="pyr")
    assert np.asarray(pyramid.data).shape == (32, 24)  # napari's numpy view: the coarsest level
    np.testing.assert_array_equal(held_data(pyramid, "denoise"), image)
    lazy = Labels(da.zeros((64, 48), dtype=np.uint32, chunks=16), name="slide")
    assert isinstance(held_data(lazy, "score"), np.ndarray)
    assert held_data(lazy, "score") is held_data(lazy, "score")  # read once while the layer shows the same data
    lazy.data = da.ones((64, 48), dtype=np.uint32, chunks=16)
    assert held_data(lazy, "score").all()  # new data: read again
    monkeypatch.setattr(_lazy_layers, "HELD_PIXELS", 64 * 48 - 1)
    with pytest.raises(UserError, match=r"'slide' \(64 x 48 px\) is too big to score in this dock") as err:
        held_data(lazy, "score")
    assert "block by block" in err.value.remedy
    plain = np.zeros((64, 48), np.uint16)
    assert held_data(Image(plain), "denoise") is plain  # in memory already: as it is


def test_the_denoising_dock_applies_to_a_pyramid_at_full_resolution(make_napari_viewer, trained_n2v, noisy_crop, qtbot):
    from napari_dlmicro.widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    noisy = noisy_crop[0]
    viewer.add_image([noisy, noisy[::2, ::2]], multiscale=True, name="pyr", scale=(0.5, 0.5))
    w = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.image.setCurrentText("pyr")
    w.load_model(str(trained_n2v))
    w.views_combo.setCurrentText("1")
    w.apply_btn.click()
    qtbot.waitUntil(lambda: "pyr [denoised]" in viewer.layers and w.job is None, timeout=60_000)
    out = viewer.layers["pyr [denoised]"]
    assert out.data.shape == noisy.shape and tuple(out.scale) == (0.5, 0.5)


def test_a_new_annotation_too_big_to_hold_is_refused_with_what_to_do(make_napari_viewer, monkeypatch):
    from napari_dlmicro.widgets.annotation import AnnotationWidget

    viewer = make_napari_viewer()
    viewer.add_image(da.zeros((4096, 4096), dtype=np.uint16, chunks=1024), name="slide")
    w = AnnotationWidget(viewer)
    w.image_combo.setCurrentText("slide")
    errors = []
    monkeypatch.setattr("napari_dlmicro.widgets.annotation.show_error", errors.append)
    monkeypatch.setattr(_lazy_layers, "HELD_PIXELS", 1 << 20)
    assert w.new_annotation() is None
    assert [layer.name for layer in viewer.layers] == ["slide"]  # no 4096² labels layer made
    assert errors and "too big to annotate in this dock" in errors[0] and "Segmentation dock" in errors[0]
