"""Every dock fits a laptop: at most 420 pixels wide at its minimum, all of them open at once within 1366 x 768."""
from __future__ import annotations

import yaml
from qtpy.QtWidgets import QApplication

from napari_dlmicro import __file__ as package_file
from napari_dlmicro.widgets._dock import MAX_MIN_WIDTH


def _dock_names() -> list[str]:
    from pathlib import Path

    manifest = yaml.safe_load((Path(package_file).parent / "napari.yaml").read_text())
    return [w["display_name"] for w in manifest["contributions"]["widgets"]]


def test_all_docks_open_at_once_fit_a_1366_by_768_screen(make_napari_viewer):
    viewer = make_napari_viewer()
    window = viewer.window._qt_window
    window.resize(1366, 740)
    viewer.open_sample("napari-dlmicro", "nuclei")
    widths = {}
    for name in _dock_names():
        dock, _ = viewer.window.add_plugin_dock_widget("napari-dlmicro", name)
        widths[name] = dock.minimumSizeHint().width()
    for _ in range(5):
        QApplication.processEvents()
    assert max(widths.values()) <= MAX_MIN_WIDTH, widths
    assert window.width() <= 1366 and window.height() <= 768, (window.width(), window.height())
    assert viewer.window._qt_viewer.canvas.native.width() >= 500  # the image keeps most of the screen
