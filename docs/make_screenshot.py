"""Regenerates docs/screenshot.png: napari with the sample, the Segmentation dock and its labels.

Run under a display (or xvfb-run -a). MODEL may be a catalogue name or a folder;
without one a small StarDist is trained on the sample for three minutes first.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import napari
from _window_shot import save_window
from qtpy.QtWidgets import QApplication


def main(model: str | None = None) -> None:
    if model is None:
        from stardist.data import test_image_nuclei_2d

        from napari_dlmicro.core.data.normalize import normalize_percentile
        from napari_dlmicro.core.models.stardist.folder import save_stardist
        from napari_dlmicro.core.models.stardist.settings import StarDistTraining
        from napari_dlmicro.core.models.stardist.train import train_stardist_2d
        from napari_dlmicro.core.runtime.events import run_to_end

        img, gt = test_image_nuclei_2d(return_mask=True)
        half = img.shape[1] // 2
        trained = run_to_end(train_stardist_2d([normalize_percentile(img)[:, :half]], [gt[:, :half]],
                                               StarDistTraining(minutes=3.0), name="quick-stardist"))
        model = str(save_stardist(trained, Path(tempfile.mkdtemp()) / "quick-stardist"))
    viewer = napari.Viewer()
    viewer.window.resize(1600, 950)
    viewer.open_sample("napari-dlmicro", "nuclei")
    viewer.layers["nuclei ground truth"].visible = False
    _, dock = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    dock._refresh_models(select=model)
    dock.image_combo.setCurrentText("nuclei")
    dock.run()
    app = QApplication.instance()
    while dock.handle is not None:
        app.processEvents()
    viewer.reset_view()  # the whole image in the canvas the docks left
    app.processEvents()
    print(f"wrote {save_window(viewer, 'screenshot.png')}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
