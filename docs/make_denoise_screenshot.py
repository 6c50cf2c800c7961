"""Regenerates docs/denoise_screenshot.png: the Denoising dock after Noise2Void trained on the noisy sample.

Run under a display (or xvfb-run -a): it trains for MINUTES (default 1) in the
dock, applies the model with the clean image as ground truth, and saves the
whole window (the loss plot, PSNR/SSIM, the preview and the denoised layer).
"""
from __future__ import annotations

import sys

import napari
from _window_shot import save_window
from qtpy.QtWidgets import QApplication


def main(minutes: float = 1.0) -> None:
    viewer = napari.Viewer()
    viewer.window.resize(1400, 900)
    viewer.open_sample("napari-dlmicro", "noisy_nuclei")
    _, dock = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Denoising (N2V / CARE)")
    noisy = next(layer.name for layer in viewer.layers if "noisy" in layer.name)
    clean = next(layer.name for layer in viewer.layers if layer.name != noisy)
    dock.image.setCurrentText(noisy)
    dock.truth.setCurrentText(clean)
    dock.kind.setCurrentText("n2v")
    dock.minutes.setValue(minutes)
    dock.epochs.setValue(0)
    app = QApplication.instance()
    for button in (dock.train_btn, dock.apply_btn):
        button.click()
        while dock.job is not None:
            app.processEvents()
    viewer.layers[clean].visible = False
    viewer.layers[noisy].visible = False
    quality = dock.quality.text()
    print(f"wrote {save_window(viewer, 'denoise_screenshot.png')}: {quality}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
