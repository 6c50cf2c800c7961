"""Cancel in the docks: idle and usable at once, what was finished kept, and closing the viewer cancels too."""
from __future__ import annotations

import numpy as np


def test_segmentation_cancel_is_idle_at_once_and_says_what_it_kept(make_napari_viewer, trained_stardist, right_half,
                                                                   qtbot):
    from napari_dlmicro.widgets.segmentation import SegmentationWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.tile(right_half[0], (4, 4)), name="big")
    dock = SegmentationWidget(viewer)
    dock._refresh_models(select=str(trained_stardist))
    dock.tile_spin.setValue(256)
    dock.run()
    handle = dock.handle
    qtbot.waitUntil(lambda: dock._tiles_shown >= 1, timeout=120_000)
    dock.cancel()
    assert dock.handle is None and dock.run_button.isEnabled()  # idle at the click
    assert dock.status.text().startswith("Cancelled:") and "kept in the layer" in dock.status.text()
    assert handle.token.cancelled
    qtbot.waitUntil(lambda: handle.thread_done, timeout=30_000)  # the job ends on its own shortly after


def test_closing_the_viewer_cancels_the_docks_jobs(make_napari_viewer, trained_stardist, right_half, qtbot):
    from napari_dlmicro.widgets.segmentation import SegmentationWidget

    viewer = make_napari_viewer()
    viewer.add_image(np.tile(right_half[0], (4, 4)), name="big")
    _, dock = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    assert isinstance(dock, SegmentationWidget)
    dock._refresh_models(select=str(trained_stardist))
    dock.tile_spin.setValue(256)
    dock.run()
    handle = dock.handle
    dock.close()
    assert handle.token.cancelled
    qtbot.waitUntil(lambda: handle.thread_done, timeout=30_000)
