"""napari's longest event-loop stall while a user clicks objects in the Classification dock.

The bundled nuclei sample and its ground truth, mirrored into a square canvas
of --size pixels (about 125 nuclei per 512²), open in a real viewer with the
Classification dock. After the dock has measured every object, --clicks
objects are labelled through napari's own mouse callbacks, --gap seconds
apart, alternating two classes by size (as a user sorting small from large
nuclei would); each click refits the fast classifier off the GUI thread and
redraws the class layer. A 10 ms heartbeat records the event loop's gaps.
Figures are printed, never asserted. Run under Xvfb:

    xvfb-run -a -s "-screen 0 1366x768x24" python benchmarks/classify_stall.py --size 2048 --clicks 30
"""
from __future__ import annotations

import argparse
import time

import napari
import numpy as np
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.events import Event
from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks
from qtpy.QtWidgets import QApplication
from stall_probe import StallProbe
from stardist.data import test_image_nuclei_2d


def canvas(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The nuclei sample and its labels mirrored (objects stay whole) and repeated to ``size``², ids unique."""
    img, gt = test_image_nuclei_2d(return_mask=True)
    tile_img = np.block([[img, img[:, ::-1]], [img[::-1], img[::-1, ::-1]]])
    n = int(gt.max())
    tile_gt = np.block([[gt, np.where(gt[:, ::-1] > 0, gt[:, ::-1] + n, 0)],
                        [np.where(gt[::-1] > 0, gt[::-1] + 2 * n, 0),
                         np.where(gt[::-1, ::-1] > 0, gt[::-1, ::-1] + 3 * n, 0)]])
    reps = -(-size // tile_img.shape[0])
    images, labels = [], []
    for r in range(reps):
        images.append([tile_img] * reps)
        labels.append([np.where(tile_gt > 0, tile_gt + (r * reps + c) * 4 * n, 0) for c in range(reps)])
    return np.block(images)[:size, :size].astype(np.float32), np.block(labels)[:size, :size].astype(np.int32)


def click(layer, position) -> None:
    """A click at world ``position`` as napari delivers it to the layer's mouse callbacks."""
    for kind, deliver in (("mouse_press", mouse_press_callbacks), ("mouse_release", mouse_release_callbacks)):
        event = ReadOnlyWrapper(Event(type_name=kind, is_dragging=False, modifiers=[], position=tuple(position),
                                      pos=np.array([10.0, 10.0]), view_direction=None, dims_displayed=[0, 1],
                                      button=1), exceptions=("handled",))
        deliver(layer, event)


def wait(app, condition, timeout_s: float = 600.0) -> None:
    end = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.005)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--clicks", type=int, default=30)
    p.add_argument("--gap", type=float, default=0.4, help="seconds between clicks")
    args = p.parse_args()
    image, labels = canvas(args.size)
    viewer = napari.Viewer()
    app = QApplication.instance()
    viewer.add_image(image, name="nuclei")
    layer = viewer.add_labels(labels, name="nuclei labels")
    _, dock = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Classification")
    t0 = time.perf_counter()
    wait(app, lambda: dock.measured is not None and dock.handle is None)
    features = dock.measured.features
    print(f"{len(features.ids)} objects measured in {time.perf_counter() - t0:.1f} s")
    area = features.table().get("shape_area")
    ids = np.asarray(features.ids)
    order = np.argsort(np.asarray(area)) if area is not None else np.arange(len(ids))
    small, large = ids[order[: args.clicks]], ids[order[::-1][: args.clicks]]
    probe = StallProbe()
    probe.start()
    for k in range(args.clicks):
        index, label = (0, small[k // 2]) if k % 2 == 0 else (1, large[k // 2])
        dock.state.select(index)
        centre = features.centroids[features.rows([int(label)])][0] * np.asarray(layer.scale)
        click(layer, centre)
        end = time.perf_counter() + args.gap
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)
    wait(app, lambda: dock.handle is None and not dock._click_timer.isActive())
    probe.stop()
    print(f"{args.clicks} clicks {args.gap} s apart on {len(ids)} objects: longest event-loop stall "
          f"{probe.max_ms:.0f} ms (target < 50 ms); the worst gaps: {'; '.join(probe.worst(4))}")
    print(f"dock: {dock.form.counts.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
