"""napari's longest event-loop stall while a user clicks objects in the Classification dock.

The bundled nuclei sample and its ground truth, mirrored into a square canvas
of --size pixels (about 125 nuclei per 512²: 1,125 at the default 1536), open
in a real viewer with the Classification dock. After the dock has measured
every object (and made its class layer), --clicks objects are labelled
through napari's own mouse callbacks, --gap seconds apart, alternating two
classes by size (as a user sorting small from large nuclei would); each
click refits the fast classifier off the GUI thread and redraws the class
layer, the click markers and the counts. A 10 ms heartbeat records the event
loop's gaps: the worst gap after each click (until the next one) is that
click's stall; the first click is reported on its own. Then the clicks pause
and the held-out score runs; its worst gap is reported too.

The peer, in the same process and viewer: a pan of the view by a few pixels
before each click (--gap seconds before it), which only redraws the canvas;
interleaved, so that pans and clicks meet the same load. A click
cannot stall napari for less than the frame it redraws, so the ratio of the
two says what the dock adds. Figures are printed, never asserted. Run under
Xvfb (software OpenGL: a frame costs far more than on a GPU):

    xvfb-run -a -s "-screen 0 1366x768x24" python benchmarks/classify_stall.py --size 1536 --clicks 20
"""
from __future__ import annotations

import argparse
import os
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
    """Run the event loop until ``condition()``."""
    end = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def run_for(app, seconds: float) -> None:
    """Run the event loop for ``seconds``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def worst_after(probe: StallProbe, since: int) -> float:
    """The longest gap the probe recorded after its ``since``-th."""
    return max((g for _, g in probe.gaps[since:]), default=0.0)


def figures(stalls: list[float]) -> str:
    return f"median {np.median(stalls):.0f} ms, worst {max(stalls):.0f} ms"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1536)
    p.add_argument("--clicks", type=int, default=20)
    p.add_argument("--gap", type=float, default=0.4, help="seconds between clicks")
    args = p.parse_args()
    print(f"napari {napari.__version__}, {os.cpu_count()} cores, load average at the start "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}; --size {args.size} --clicks {args.clicks} "
          f"--gap {args.gap}")
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
    run_for(app, 1.0)  # the class layer made at the measurement is drawn
    area = features.table().get("shape_area")
    ids = np.asarray(features.ids)
    order = np.argsort(np.asarray(area)) if area is not None else np.arange(len(ids))
    small, large = ids[order[: args.clicks]], ids[order[::-1][: args.clicks]]
    probe = StallProbe()
    probe.start()

    pans, stalls = [], []
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    for k in range(args.clicks):  # a pan, then a click: both meet the same load on a shared machine
        since = len(probe.gaps)
        centre = np.asarray(camera.center, float)
        centre[-1] += 3.0 if k % 2 == 0 else -3.0
        camera.center = tuple(centre)
        run_for(app, args.gap)
        pans.append(worst_after(probe, since))
        index, label = (0, small[k // 2]) if k % 2 == 0 else (1, large[k // 2])
        dock.state.select(index)
        since = len(probe.gaps)
        centre = features.centroids[features.rows([int(label)])][0] * np.asarray(layer.scale)
        click(layer, centre)
        run_for(app, args.gap)
        stalls.append(worst_after(probe, since))
    since = len(probe.gaps)
    wait(app, lambda: dock.handle is None and not dock._click_timer.isActive())
    settle = worst_after(probe, since)
    since = len(probe.gaps)
    wait(app, lambda: not dock._assess_timer.isActive() and (dock._assessing is None or dock._assessing.finished))
    run_for(app, 0.5)
    assess = worst_after(probe, since)
    probe.stop()
    print(f"{args.clicks} clicks {args.gap} s apart on {len(ids)} objects, the worst event-loop stall after each "
          f"click (target < 50 ms): first click {stalls[0]:.0f} ms; the others {figures(stalls[1:])}; after the "
          f"last click until its refit is shown {settle:.0f} ms; the held-out score once the clicks pause "
          f"{assess:.0f} ms")
    print(f"peer: {args.clicks} pans of the view (a redraw alone) {figures(pans)}; clicks / pans (medians) "
          f"{np.median(stalls[1:]) / max(np.median(pans), 1e-9):.2f}")
    print(f"every click's stall (ms): {', '.join(f'{s:.0f}' for s in stalls)}")
    print(f"the worst gaps: {'; '.join(probe.worst(4, t0=probe.gaps[0][0] if probe.gaps else 0.0))}")
    print(f"dock: {dock.form.counts.text()}; load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    viewer.close()


if __name__ == "__main__":
    main()
