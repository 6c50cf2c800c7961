"""The napari internals the plugin uses: the internal path where napari has it, the public one where not."""
from __future__ import annotations

import numpy as np

from napari_dlmicro.widgets import _napari_compat
from napari_dlmicro.widgets._napari_compat import camera, view_direction


def test_a_labels_region_is_written_and_redrawn_both_ways(make_napari_viewer, monkeypatch):
    import napari

    from napari_dlmicro.widgets._layers import write_labels_region

    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((64, 64), np.uint16))
    region = (slice(8, 24), slice(8, 24))
    partial = write_labels_region(layer, region, np.full((16, 16), 3, np.uint16))
    assert partial or napari.__version__ not in _napari_compat.CHECKED_WITH  # the internal path, where checked
    assert (layer.data[region] == 3).all() and layer.data.sum() == 3 * 256

    def missing(*_):
        raise AttributeError("an internal that another napari does not have")

    monkeypatch.setattr(_napari_compat, "_partial_redraw", missing)  # the public fall-back path
    assert write_labels_region(layer, region, np.full((16, 16), 5, np.uint16)) is False
    assert (layer.data[region] == 5).all()


def test_camera_and_view_direction_on_this_napari_and_without_the_internals(make_napari_viewer):
    viewer = make_napari_viewer()
    assert camera(viewer).zoom > 0
    viewer.dims.ndisplay = 3
    assert view_direction(viewer) is None or len(view_direction(viewer)) == 3

    class Bare:  # a viewer whose cursor does not expose its viewing ray (another napari)
        cursor = object()
        camera = "the camera"

    assert view_direction(Bare()) is None and camera(Bare()) == "the camera"


def test_the_window_is_sized_for_the_screen(make_napari_viewer):
    viewer = make_napari_viewer()
    width, height = _napari_compat.fit_window_to_screen(viewer, largest=(1200, 700))
    assert width <= 1200 and height <= 700


def test_a_store_layer_reloads_what_was_written_since_it_was_drawn_both_ways(make_napari_viewer, tmp_path,
                                                                           monkeypatch):
    import zarr

    from napari_dlmicro.widgets._napari_compat import reload_layer

    levels = [zarr.create_array(str(tmp_path / str(k)), shape=(4096 >> k, 4096 >> k), chunks=(512, 512),
                                dtype="uint32", fill_value=0) for k in range(2)]
    viewer = make_napari_viewer()
    layer = viewer.add_labels([zarr.open_array(str(tmp_path / str(k)), mode="r") for k in range(2)],
                              multiscale=True)
    viewer.reset_view()  # the whole image in view: napari shows its coarsest level, the one it keeps
    assert layer.data_level == 1

    def missing(*_):
        raise AttributeError("an internal that another napari does not have")

    for value, internal in ((3, True), (5, False)):
        if not internal:
            monkeypatch.setattr(_napari_compat, "_drop_cached_level", missing)  # another napari: the public path
        for level in levels:
            level[:] = value
        assert np.asarray(layer._slice.image.raw).max() != value  # napari still shows what it read before
        reload_layer(layer)
        assert np.asarray(layer._slice.image.raw).max() == value and np.asarray(layer.thumbnail).any()


def test_the_labels_colour_mapping_is_compiled_ahead_for_the_forms_a_labels_layer_uses():
    import napari

    from napari_dlmicro.widgets._napari_compat import warm_labels_colours

    warm_labels_colours()
    if napari.__version__ in _napari_compat.CHECKED_WITH:
        from napari.utils.colormaps._accelerated_cmap import _zero_preserving_modulo_inner_loop as loop

        compiled = {(str(sig[0].dtype), sig[0].ndim) for sig in getattr(loop, "signatures", [])}
        assert {("uint32", 2), ("uint32", 1)} <= compiled or not hasattr(loop, "signatures")  # numba, or none
