"""Segmentation figures: StarDist speed (network vs NMS, untiled and tiled), memory, GUI stalls.

Run: python benchmarks/segmentation.py [--model FOLDER|NAME] [--big 4096] [--gui]

Without --model it trains a small StarDist on the nuclei sample for --train-minutes
(offline machines have no pretrained weights). Prints figures; asserts nothing.
Where TensorFlow and stardist's models import, the same image also runs
through stardist's own implementation of a model of the same shape, and the ratio is printed.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model(args):
    import torch
    from stardist.data import test_image_nuclei_2d

    from napari_dlmicro.core.data.normalize import normalize_percentile
    from napari_dlmicro.core.models.cache import get_segmenter
    from napari_dlmicro.core.models.stardist.settings import StarDistTraining
    from napari_dlmicro.core.models.stardist.train import train_stardist_2d
    from napari_dlmicro.core.runtime.devices import resolve_device
    from napari_dlmicro.core.runtime.events import run_to_end

    device = resolve_device(args.device)
    if args.model:
        return get_segmenter(args.model, device)
    img, gt = test_image_nuclei_2d(return_mask=True)
    half = img.shape[1] // 2
    s = StarDistTraining(minutes=args.train_minutes)
    model = run_to_end(train_stardist_2d([normalize_percentile(img)[:, :half]], [gt[:, :half]], s, device=device))
    torch.set_grad_enabled(False)
    return model


def time_stardist(model, image: np.ndarray, tile: int | None, repeats: int = 3, views: int = 1) -> dict[str, float]:
    """Median seconds of the network (candidates; ``views`` test-time views) and of NMS + rendering."""
    from napari_dlmicro.core.data.normalize import normalize_percentile
    from napari_dlmicro.core.runtime.cancel import NEVER
    from napari_dlmicro.core.runtime.events import run_to_end

    x = normalize_percentile(image)[..., None]
    th = model.default_settings()
    net_t, nms_t, n = [], [], 0
    for _ in range(repeats):
        model._cache = None
        t0 = time.perf_counter()
        cands = run_to_end(model.candidates(x, NEVER, tile, th["prob_thresh"], views))
        t1 = time.perf_counter()
        labels = model.render(cands, image.shape, th["nms_thresh"])
        t2 = time.perf_counter()
        net_t.append(t1 - t0)
        nms_t.append(t2 - t1)
        n = int(labels.max())
    return {"network_s": float(np.median(net_t)), "nms_s": float(np.median(nms_t)), "objects": n}


def gui_stall(model_folder: str, image: np.ndarray) -> tuple[float, float]:
    """(click ms, longest stall ms): the time ``Run`` holds the GUI (it creates the
    output layer), then the longest gap between 5 ms heartbeats of napari's event
    loop while the job runs and its result is written into the layer."""
    import napari
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=False)
    viewer.add_image(image, name="bench")
    _, dock = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    dock._refresh_models(select=model_folder)
    dock.tile_spin.setValue(512)
    gaps, last = [], [time.perf_counter()]

    def beat():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
    timer = QTimer(interval=5, timeout=beat)
    t0 = time.perf_counter()
    dock.run()
    click_ms = (time.perf_counter() - t0) * 1000
    last[0] = time.perf_counter()
    timer.start()
    while dock.handle is not None:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    viewer.close()
    return click_ms, (max(gaps) * 1000 if gaps else float("nan"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--big", type=int, default=4096)
    p.add_argument("--train-minutes", type=float, default=2.0)
    p.add_argument("--gui", action="store_true", help="also measure the event-loop stall in the dock (needs a display)")
    args = p.parse_args()
    from stardist.data import test_image_nuclei_2d

    img, _ = test_image_nuclei_2d(return_mask=True)
    model = _model(args)
    print(f"model: {model.info.name} on {model.device}")
    r = time_stardist(model, img, None)
    print(f"StarDist 512x512 untiled: network {r['network_s']:.3f} s, NMS+render {r['nms_s']:.3f} s, "
          f"{r['objects']} objects, peak RSS {_peak_mb():.0f} MB")
    v = time_stardist(model, img, None, views=8)
    print(f"  with 8 test-time views: network {v['network_s']:.3f} s ({v['network_s'] / r['network_s']:.1f}x), "
          f"NMS+render {v['nms_s']:.3f} s, {v['objects']} objects")
    big = np.tile(img, (args.big // img.shape[0], args.big // img.shape[1]))
    r = time_stardist(model, big, 1024, repeats=1)
    print(f"StarDist {big.shape[0]}x{big.shape[1]} tiled (1024): network {r['network_s']:.2f} s, "
          f"NMS+render {r['nms_s']:.2f} s, {r['objects']} objects, peak RSS {_peak_mb():.0f} MB")
    if args.gui:
        import tempfile
        from pathlib import Path

        from napari_dlmicro.core.models.stardist.folder import save_stardist

        folder = save_stardist(model, Path(tempfile.mkdtemp()) / "bench-stardist")
        click, stall = gui_stall(str(folder), np.tile(img, (4, 4)))
        print(f"dock on 2048x2048: Run holds the GUI {click:.0f} ms (first run: the output layer is created); "
              f"longest event-loop stall while it segments {stall:.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()
