"""Training benchmark: StarDist from scratch on half the nuclei image, scored on the other half.

Prints the F1/AP table on the held-out half for the trained model (with its
default test-time views, and with one view) and for a
classical baseline (Otsu threshold + distance-transform watershed), training
steps per second, and (with ``--gui``) the longest napari event-loop stall
while the Training dock trains. Writes the learning curve as a PNG. GPU
figures only where a GPU exists.

    python benchmarks/training.py --minutes 5 --png docs/stardist_learning_curve.png
    python benchmarks/training.py --gui --gui-seconds 60
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def nuclei():
    from stardist.data import test_image_nuclei_2d

    return test_image_nuclei_2d(return_mask=True)


def baseline(image: np.ndarray) -> np.ndarray:
    """Otsu threshold, then a watershed on the distance transform from its peaks."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    smooth = gaussian(image.astype(np.float32), 1.0)
    fg = smooth > threshold_otsu(smooth)
    dist = ndi.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=4, labels=ndi.label(fg)[0], exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg)


def train_and_score(minutes: float, out: str | None, seed: int = 0):
    """Train on the left half (its last rows held out for validation); score on the right half.

    The validation rows are the Training dock's default fraction, cut as the dock cuts a single image.
    """
    from napari_dlmicro.core.data.normalize import normalize_percentile
    from napari_dlmicro.core.evaluation.segmentation import score
    from napari_dlmicro.core.jobs.segment import segment
    from napari_dlmicro.core.models.stardist.settings import StarDistTraining
    from napari_dlmicro.core.models.stardist.train import train_stardist
    from napari_dlmicro.core.runtime.events import Metrics, run_to_end

    img, gt = nuclei()
    half = img.shape[1] // 2
    x = normalize_percentile(img[:, :half])
    cut = int(round(img.shape[0] * (1 - StarDistTraining().val_fraction)))
    settings = StarDistTraining(minutes=minutes, seed=seed)
    t0 = time.perf_counter()
    steps = []
    job = train_stardist([x[:cut]], [gt[:cut, :half]], [x[cut:]], [gt[cut:, :half]], settings,
                         name="bench-stardist", save_to=out)
    result = run_to_end(job, lambda e: steps.append(e.step) if isinstance(e, Metrics) else None)
    wall = time.perf_counter() - t0
    n_steps = int(max(steps)) if steps else 0
    test = np.ascontiguousarray(img[:, half:])
    labels = segment(test, result.model, measure=False).labels  # as the model segments: its own views
    one_view = segment(test, result.model, measure=False, settings={"views": 1}).labels
    return (result, score(labels, gt[:, half:]), score(one_view, gt[:, half:]), score(baseline(test), gt[:, half:]),
            wall, n_steps)


def plot(history: list[dict], png: str) -> None:
    """Train/validation loss and validation F1 against training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["seconds"] / 60 for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3), tight_layout=True)
    a.plot(t, [r["train_loss"] for r in history], label="train")
    a.plot(t, [r.get("val_loss", np.nan) for r in history], label="validation")
    a.set_xlabel("minutes")
    a.set_ylabel("loss")
    a.legend()
    b.plot(t, [r.get("f1", np.nan) for r in history], label="F1 @ IoU 0.5")
    b.plot(t, [r.get("ap", np.nan) for r in history], label="AP @ IoU 0.5")
    b.plot(t, [r.get("f1_07", np.nan) for r in history], label="F1 @ IoU 0.7")
    b.set_xlabel("minutes")
    b.set_ylim(0, 1)
    b.legend()
    fig.suptitle("StarDist from scratch, 2-core CPU (validation: held-out rows of the training half)", fontsize=9)
    fig.savefig(png, dpi=100)


def gui_stall(seconds: float) -> dict[str, float | str]:
    """Longest event-loop stall (ms) while the Training dock trains, and where the GUI thread was."""
    import tempfile
    from pathlib import Path

    import napari
    from qtpy.QtWidgets import QApplication
    from stall_probe import StallProbe, settle

    from napari_dlmicro.core.data.training_sets import add_pair
    from napari_dlmicro.widgets.training import TrainingWidget

    img, gt = nuclei()
    folder = Path(tempfile.mkdtemp()) / "set"
    add_pair(folder, img[:, :256], gt[:, :256], "left", source="benchmark")
    viewer = napari.Viewer(show=True)
    dock = TrainingWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.set_folder(str(folder))
    dock.minutes.setValue(seconds / 60)
    dock.val_every.setValue(10)
    warm = settle()
    probe = StallProbe(sample=os.environ.get("DLMICRO_STALL_SAMPLE") == "1")
    probe.start()
    t0 = time.perf_counter()
    dock.start()
    figures: dict[str, float | str] = {"the dock's warm-up before the click, s": warm,
                                       "the Train click itself, ms": (time.perf_counter() - t0) * 1000}
    probe.reset()  # from here on the job runs: measure the loop while it does
    end = time.perf_counter() + seconds + 60
    while time.perf_counter() < end and (dock.handle is None or not dock.handle.finished):
        QApplication.processEvents()
        time.sleep(0.002)
    probe.stop()
    figures["longest stall while training, ms"] = probe.max_ms
    figures["stalls over 50 ms"] = float(sum(g > 50 for _, g in probe.gaps))
    ms, gen = probe.longest_collection()
    figures["longest garbage collection, ms"] = f"{ms:.0f} (generation {gen})"
    for i, line in enumerate(probe.worst(3, t0)):
        figures[f"stall {i + 1}"] = line
    viewer.close()
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--png", default=None, help="write the learning curve here")
    p.add_argument("--out", default=None, help="save the trained model here")
    p.add_argument("--seed", type=int, default=0, help="seed of the network's start and the patch order")
    p.add_argument("--gui", action="store_true", help="measure the event-loop stall in the Training dock")
    p.add_argument("--gui-seconds", type=float, default=60.0)
    p.add_argument("--json", default=None, help="write the figures as JSON here")
    a = p.parse_args()
    import torch

    figures: dict = {"threads": torch.get_num_threads(), "gpu": torch.cuda.is_available()}
    if a.gui:
        stall = gui_stall(a.gui_seconds)
        figures.update(stall)
        for name, value in stall.items():
            print(f"{name:36s} {value:.0f}" if isinstance(value, float) else f"{name:36s} {value}")
    else:
        from napari_dlmicro.core.evaluation.segmentation import table

        result, trained, single, base, wall, steps = train_and_score(a.minutes, a.out, a.seed)
        print(f"StarDist from scratch, {a.minutes:g} min budget, seed {a.seed}: {wall:.0f} s wall, {steps} steps, "
              f"{steps / max(wall, 1e-9):.2f} steps/s (incl. validation)")
        print(f"thresholds: {result.model.default_settings()}")
        views = int(result.model.default_settings().get("views", 1))
        print(f"trained StarDist on the held-out half ({views} test-time views, its default):\n" + table(trained))
        print("the same, one view:\n" + table(single))
        print("classical baseline (Otsu + watershed) on the held-out half:\n" + table(base))
        figures.update(minutes=a.minutes, wall_s=wall, steps=steps, steps_per_s=steps / max(wall, 1e-9),
                       f1_05=trained[0].f1, ap_05=trained[0].ap, views=views, f1_05_one_view=single[0].f1,
                       baseline_f1_05=base[0].f1, baseline_ap_05=base[0].ap,
                       history=result.history)
        if a.png:
            plot(result.history, a.png)
            print(f"learning curve written to {a.png}")
        if torch.cuda.is_available():
            print("a GPU is present: rerun with --device cuda figures (not measured here)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=2, default=float)


if __name__ == "__main__":
    main()
