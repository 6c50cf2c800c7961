"""The main job in one command: napari with the plugin and the sample, or a headless demo.

``python -m napari_dlmicro.demo`` opens napari with the nuclei sample and the
Segmentation dock, sized for the screen, when there is a display. Without one
(or with ``--headless``) it segments the sample and writes labels,
measurements and a summary into ``--out`` (default ``dlmicro-demo/``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from stardist.data import test_image_nuclei_2d
from stardist.matching import matching

from napari_dlmicro.cli.common import run_with_progress
from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.tiff_write import write_labels
from napari_dlmicro.core.jobs.segment import SegmentJob, segment_job
from napari_dlmicro.core.labels.measure import write_csv
from napari_dlmicro.core.models.catalogue import CATALOGUE, fetch_pretrained
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.models.stardist.train import train_stardist_2d

MODEL = "stardist:2D_versatile_fluo"
OFFLINE_MINUTES = 2.0


def model_for_demo(log) -> object:
    """The pretrained model, or, offline, a small StarDist trained on the sample itself."""
    try:
        fetch_pretrained(CATALOGUE[MODEL])
        return MODEL
    except UserError as exc:
        log(f"{exc}\nOffline: training a small StarDist on the sample's left half for "
            f"{OFFLINE_MINUTES:g} minutes instead.")
    img, gt = test_image_nuclei_2d(return_mask=True)
    half = img.shape[1] // 2
    settings = StarDistTraining(minutes=OFFLINE_MINUTES)
    return run_with_progress(lambda token: train_stardist_2d([normalize_percentile(img)[:, :half]], [gt[:, :half]],
                                                             settings, token, name="demo"), "training")


def headless(out: Path) -> int:
    """Segment the nuclei sample; write labels, measurements and the score against ground truth."""
    img, gt = test_image_nuclei_2d(return_mask=True)
    model = model_for_demo(print)
    result = run_with_progress(lambda token: segment_job(SegmentJob(img, model, axes="YX"), token),
                               "segmenting the sample")
    out.mkdir(parents=True, exist_ok=True)
    write_labels(out / "nuclei_labels.tif", result.labels)
    write_csv(out / "nuclei_measurements.csv", result.table)
    m = matching(gt, result.labels, thresh=0.5)
    n_true = len(np.unique(gt[gt > 0]))
    print(f"{result.n_objects} nuclei found (ground truth: {n_true}); F1 at IoU 0.5 = {m.f1:.3f}")
    print(f"wrote {out / 'nuclei_labels.tif'} and {out / 'nuclei_measurements.csv'}")
    return 0


def gui() -> int:
    """napari with the nuclei sample and the Segmentation dock, the window sized for the screen."""
    import napari  # the GUI is optional: the headless demo runs without it

    from napari_dlmicro.widgets._napari_compat import fit_window_to_screen

    viewer = napari.Viewer(title="napari-dlmicro")
    fit_window_to_screen(viewer)
    viewer.open_sample("napari-dlmicro", "nuclei")
    viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    viewer.reset_view()
    napari.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Pick the GUI when a display exists, else the headless demo."""
    p = argparse.ArgumentParser(prog="python -m napari_dlmicro.demo")
    p.add_argument("--headless", action="store_true", help="no viewer: segment the sample and write files")
    p.add_argument("--out", type=Path, default=Path("dlmicro-demo"))
    args = p.parse_args(argv)
    try:
        if args.headless or not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return headless(args.out)
        return gui()
    except UserError as exc:
        print(f"napari-dlmicro demo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
