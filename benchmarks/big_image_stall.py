"""A 50,000² OME-Zarr in napari: event-loop stalls and chunk reads while panning and zooming, Preview view, and Run.

The store: the bundled nuclei sample (512², uint16) mirrored into a seamless
1024² tile, repeated lazily with ``dask.array.tile`` to --size² pixels, every
pyramid level (each half the one above, by striding, down to one chunk) written
by ``ome_zarr.writer.write_multiscale`` as NGFF 0.4 (Zarr v2, Blosc) in
--chunk² chunks. It is made once at --store and reused by later runs; it is
deleted at the end unless --keep. Run it with ``NAPARI_ASYNC=1`` for napari's
asynchronous rendering (chunks read off the GUI thread); the first line says which.

1. *Pan and zoom.* In a 1366x768 viewer the store is opened through our
   reader (``viewer.open(path, plugin="napari-dlmicro")``) and, as the peer,
   napari's own multiscale path on the same store (``viewer.add_image`` of
   ``dask.array.from_zarr`` of every level, ``multiscale=True``: what
   napari-ome-zarr gives napari). A QTimer drives the same camera steps on
   both: from the whole slide, zooming in by 2x a step to full resolution,
   then panning there. A 10 ms heartbeat (``stall_probe.StallProbe``) gives
   the worst event-loop gap of each step; the runs alternate (ours, peer,
   ours, peer, after one warm-up of each so both find the files in the page
   cache) with napari's dask cache emptied before each. Every read of the
   store is counted (zarr's ``LocalStore.get`` wrapped): chunks read per
   pyramid level, against the chunks the view covers.
2. *Preview view* with the Segmentation dock and a small StarDist trained here
   in --train-steps steps on the nuclei sample: at full resolution, the region
   segmented, the chunks it read (per level) and the chunks that region covers,
   and the event-loop stall meanwhile.
3. *Run* on a --run-size² store (same generator; a whole 50,000² run takes
   hours on 2 cores) with one local worker process: the same pans while it
   runs against the same pans with no job (before and after), the refreshes of
   the lazy Labels layer (and how long each held the GUI thread), then Cancel
   after --cancel-after blocks: seconds from Cancel to the dock idle and to
   the worker processes gone.

Figures are printed, never asserted. Run under Xvfb (software OpenGL: a frame
costs far more than on a GPU), e.g.

    xvfb-run -a -s "-screen 0 1366x768x24" python benchmarks/big_image_stall.py --store slide50k.ome.zarr --keep
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import dask.array as da
import napari
import numpy as np
import psutil
import zarr
import zarr.storage
from napari.utils import resize_dask_cache
from numcodecs import Blosc
from ome_zarr.format import FormatV04
from ome_zarr.io import ZarrLocation
from ome_zarr.writer import write_multiscale
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from stall_probe import StallProbe
from stardist.data import test_image_nuclei_2d

from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.models.stardist.folder import save_stardist
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.models.stardist.train import train_stardist_2d
from napari_dlmicro.core.runtime.events import run_to_end
from napari_dlmicro.widgets.view_region import visible_region

STEP_S = 0.5  # seconds between camera steps
COMPRESSOR = Blosc(cname="zstd", clevel=1, shuffle=Blosc.BITSHUFFLE)  # pixels below 256 in uint16: 9 bits of 16


# -- the store ---------------------------------------------------------------
def nuclei_tile() -> np.ndarray:
    """The nuclei sample mirrored into a 1024² tile that repeats without seams."""
    img = test_image_nuclei_2d()
    return np.block([[img, img[:, ::-1]], [img[::-1], img[::-1, ::-1]]])


def pyramid(size: int, chunk: int) -> list[da.Array]:
    """Every level of the tiled slide, lazily: level k is the tile strided by 2**k, repeated (exact for k <= 10)."""
    tile = nuclei_tile()
    levels, f = [], 1
    while True:
        n = -(-size // f)
        small = tile[::f, ::f]
        reps = -(-n // small.shape[0])
        level = da.tile(da.from_array(small, chunks=small.shape), (reps, reps))[:n, :n].rechunk(chunk)
        levels.append(level)
        if n <= chunk or f >= tile.shape[0]:
            return levels
        f *= 2


def make_store(path: Path, size: int, chunk: int) -> float:
    """Write the slide at ``path`` (NGFF 0.4); seconds taken (0 when it is there already)."""
    if (path / ".zattrs").exists() and zarr.open_group(str(path), mode="r")[level_paths(path)[0]].shape == (size, size):
        return 0.0
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_multiscale(pyramid(size, chunk), root, fmt=FormatV04(), axes="yx", name=path.name.split(".")[0],
                     storage_options={"chunks": (chunk, chunk), "compressor": COMPRESSOR})
    return time.perf_counter() - t0


def level_paths(path: Path) -> list[str]:
    """The store's pyramid levels, finest first, as its multiscales metadata list them."""
    return [d["path"] for d in zarr.open_group(str(path), mode="r").attrs["multiscales"][0]["datasets"]]


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- counting reads ----------------------------------------------------------
class Reads:
    """Every chunk read from a local Zarr store: (time, store root, key, bytes)."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str, str, int]] = []
        original = zarr.storage.LocalStore.get
        reads = self

        async def get(store, key, prototype=None, byte_range=None):
            out = await original(store, key, prototype, byte_range)
            name = key.rsplit("/", 1)[-1]
            if out is not None and not name.startswith(".") and name != "zarr.json":
                reads.log.append((time.perf_counter(), str(store.root), key, len(out)))
            return out

        zarr.storage.LocalStore.get = get

    def since(self, t: float, root: Path | None = None) -> list[tuple[float, str, str, int]]:
        return [r for r in self.log if r[0] >= t and (root is None or Path(r[1]) == root)]


def per_level(reads) -> str:
    levels = Counter(int(key.split("/")[0].lstrip("s")) for _, _, key, _ in reads)
    return ", ".join(f"level {k}: {n}" for k, n in sorted(levels.items())) or "none"


def chunks_covered(region: dict, chunk: int) -> int:
    n = 1
    for s in region.values():
        if isinstance(s, slice):
            n *= s.stop // chunk - s.start // chunk + (1 if s.stop % chunk else 0)
    return n


# -- driving napari ----------------------------------------------------------
def run_for(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def wait(app, condition, timeout_s: float = 1800.0) -> None:
    end = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def camera_steps(size: int, canvas: tuple[int, int]) -> list[tuple[tuple[float, float], float]]:
    """(centre, zoom): the whole slide, 2x zooms in to full resolution near the centre, then pans there."""
    centre = (size * 0.43, size * 0.57)
    zoom = min(canvas) / size * 0.95
    steps = [((size / 2, size / 2), zoom)]
    while zoom < 1.0:
        zoom = min(1.0, zoom * 2)
        steps.append((centre, zoom))
    for k in range(12):  # right, down, right, down, …: new chunks come into view on every pan
        y, x = steps[-1][0]
        steps.append(((y + 300.0, x) if k % 2 else (y, x + 450.0), 1.0))
    return steps


def drive(app, viewer, layer, steps, probe: StallProbe, reads: Reads, root: Path, chunk: int) -> list[dict]:
    """Apply each camera step from a QTimer, STEP_S apart; per step the worst stall, chunks read and in view."""
    marks: list[tuple[float, int]] = []
    views: list[tuple[int, int]] = []  # the level on screen and the chunks in view, just before the next step
    camera = viewer.scene.camera

    def apply(i: int) -> None:
        if i:
            views.append((layer.data_level, view_chunks(layer, chunk)))
        marks.append((time.perf_counter(), i))
        centre, zoom = steps[i]
        camera.zoom = zoom
        camera.center = centre

    timers = []
    for i in range(len(steps)):
        t = QTimer(singleShot=True, interval=int(i * STEP_S * 1000))
        t.timeout.connect(lambda i=i: apply(i))
        t.start()
        timers.append(t)
    wait(app, lambda: len(marks) == len(steps))
    run_for(app, STEP_S)
    views.append((layer.data_level, view_chunks(layer, chunk)))
    end = time.perf_counter()
    out = []
    for i, (t, _) in enumerate(marks):
        t_end = marks[i + 1][0] if i + 1 < len(marks) else end
        gaps = [g for e, g in probe.gaps if t <= e < t_end]
        got = [r for r in reads.since(t, root) if r[0] < t_end]
        level, in_view = views[i] if i < len(views) else (layer.data_level, -1)
        out.append({"stall": max(gaps, default=0.0), "reads": len(got), "bytes": sum(r[3] for r in got),
                    "levels": per_level(got), "level": level,
                    "in_view": in_view})
    return out


def view_chunks(layer, chunk: int) -> int:
    """Chunks of the level on screen that its corner pixels cover."""
    corners = np.asarray(layer.corner_pixels, int)
    n = 1
    for lo, hi in zip(corners[0], corners[1]):
        n *= hi // chunk - lo // chunk + 1
    return n


def open_ours(viewer, path: Path):
    return viewer.open(str(path), plugin="napari-dlmicro")[0]


def open_peer(viewer, path: Path):
    location = ZarrLocation(str(path))  # napari-ome-zarr's arrays: ome-zarr's da.from_zarr of each level
    return viewer.add_image([location.load(p) for p in level_paths(path)], multiscale=True, name="peer")


def stats(steps: list[dict]) -> tuple[float, float]:
    s = [d["stall"] for d in steps]
    return float(np.median(s)), float(max(s))


# -- the model ---------------------------------------------------------------
def train_model(folder: Path, steps: int) -> Path:
    """A small StarDist trained on the nuclei sample (as the test suite does), saved as our folder."""
    img, gt = test_image_nuclei_2d(return_mask=True)
    settings = StarDistTraining(depth=2, filters=16, steps=steps, lr=3e-3, patch=128, batch=4)
    model = run_to_end(train_stardist_2d([normalize_percentile(img)], [gt], settings, name="bench-stardist"))
    return save_stardist(model, folder / "bench-stardist", description="trained by benchmarks/big_image_stall.py")


def worker_processes() -> int:
    """Child processes that do work: multiprocessing's resource tracker stays for the process's life."""
    def works(p: psutil.Process) -> bool:
        try:
            return p.is_running() and "resource_tracker" not in " ".join(p.cmdline())
        except psutil.Error:
            return False
    return sum(1 for p in psutil.Process().children(recursive=True) if works(p))


def load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


# -- the parts ---------------------------------------------------------------
def pan_and_zoom(app, viewer, path: Path, args, reads: Reads, probe: StallProbe) -> None:
    steps = camera_steps(args.size, (768, 1366))
    results: dict[str, list[list[dict]]] = {"ours": [], "peer": []}
    opened: dict[str, list[tuple[float, int]]] = {"ours": [], "peer": []}
    order = ["ours", "peer"] * (args.rounds + 1)
    for k, who in enumerate(order):
        resize_dask_cache().cache.clear()
        t0 = time.perf_counter()
        layer = (open_ours if who == "ours" else open_peer)(viewer, path)
        viewer.reset_view()
        run_for(app, 1.0)
        opened[who].append((time.perf_counter() - t0 - 1.0, len(reads.since(t0, path))))
        probe.reset()
        result = drive(app, viewer, layer, steps, probe, reads, path, args.chunk)
        if k >= 2:  # the first of each warms the page cache
            results[who].append(result)
        viewer.layers.clear()
        run_for(app, 0.3)
    print(f"\n1. pan and zoom, {len(steps)} camera steps {STEP_S} s apart (zoom {steps[0][1]:.4f} to 1 in "
          f"{sum(1 for s in steps if s[1] < 1)} steps, then {sum(1 for s in steps if s[1] == 1) - 1} pans at full "
          f"resolution), {args.rounds} round(s) each after a warm-up, interleaved:")
    for who in ("ours", "peer"):
        for r, result in enumerate(results[who]):
            med, worst = stats(result)
            print(f"  {who:4s} round {r + 1}: worst stall per step median {med:.0f} ms, worst {worst:.0f} ms; "
                  f"chunks read {sum(d['reads'] for d in result)} ({sum(d['bytes'] for d in result) / 1e6:.1f} MB)")
    ours = [stats(r) for r in results["ours"]]
    peer = [stats(r) for r in results["peer"]]
    medians = np.mean([o[0] for o in ours]) / max(np.mean([p[0] for p in peer]), 1e-9)
    worsts = np.mean([o[1] for o in ours]) / max(np.mean([p[1] for p in peer]), 1e-9)
    print(f"  ours / peer (means over the rounds): median step stall {medians:.2f}, worst {worsts:.2f}")
    for who in ("ours", "peer"):
        print(f"  open ({who}): {', '.join(f'{s:.2f} s and {n} chunk(s)' for s, n in opened[who])} "
              "(layer made, first frame drawn)")
    print("  per step, ours (last round): zoom, level on screen, chunks in view, chunks read (per level), stall")
    for step, d in zip(steps, results["ours"][-1]):
        print(f"    zoom {step[1]:.4f}: level {d['level']}, {d['in_view']} in view, read {d['reads']} "
              f"({d['levels']}), {d['stall']:.0f} ms")
    print("  the same, peer (last round):")
    for step, d in zip(steps, results["peer"][-1]):
        print(f"    zoom {step[1]:.4f}: level {d['level']}, {d['in_view']} in view, read {d['reads']} "
              f"({d['levels']}), {d['stall']:.0f} ms")


def full_res_view(app, viewer, size: int, at: tuple[float, float]) -> None:
    viewer.scene.camera.zoom = 1.0
    viewer.scene.camera.center = at
    run_for(app, 1.0)


def preview(app, viewer, path: Path, dock, args, reads: Reads, probe: StallProbe) -> None:
    layer = open_ours(viewer, path)
    dock.image_combo.setCurrentText(layer.name)
    full_res_view(app, viewer, args.size, (args.size * 0.43, args.size * 0.57))
    region = visible_region(viewer, layer, "YX")
    for k in range(2):  # the first reads the percentiles from a small level, the second reuses them
        probe.reset()
        t0 = time.perf_counter()
        dock.preview()
        wait(app, lambda: dock.handle is None)
        run_for(app, 0.5)
        image_reads = reads.since(t0, path)  # the camera stays: every read is the job's
        shown = viewer.layers[f"{layer.name} [preview labels]"]
        print(f"\n2. Preview view #{k + 1} at full resolution: region {region['Y'].stop - region['Y'].start} x "
              f"{region['X'].stop - region['X'].start} px at y {region['Y'].start}, x {region['X'].start} "
              f"({chunks_covered(region, args.chunk)} chunks of {args.chunk}² cover it); the job read "
              f"{len(image_reads)} chunks ({per_level(image_reads)}; {sum(r[3] for r in image_reads) / 1e6:.1f} MB), "
              f"labels {shown.data.shape}, "
              f"{dock.count_label.text()}; {time.perf_counter() - t0:.1f} s; worst stall {probe.max_ms:.0f} ms")
        print(f"   the worst gaps: {'; '.join(probe.worst(3, t0=t0))}")
    viewer.layers.clear()
    run_for(app, 0.3)


def pans(app, viewer, layer, probe: StallProbe, n: int, size: int) -> list[float]:
    """``n`` pans at full resolution, STEP_S apart; the worst stall of each."""
    out = []
    y, x = size * 0.5, size * 0.5
    for k in range(n):
        since = len(probe.gaps)
        viewer.scene.camera.center = (y, x + (300.0 if k % 2 else -300.0))
        run_for(app, STEP_S)
        out.append(max((g for _, g in probe.gaps[since:]), default=0.0))
    return out


def run_and_cancel(app, viewer, dock, args, reads: Reads, probe: StallProbe, work: Path) -> None:
    path = Path(str(args.store).replace(".ome.zarr", "") + f"_{args.run_size}.ome.zarr")
    made = make_store(path, args.run_size, args.chunk)
    layer = open_ours(viewer, path)
    dock.image_combo.setCurrentText(layer.name)
    big = dock.state.blockwise
    big.workers, big.block_size, big.output_folder = 1, args.block, str(work / "out")
    shutil.rmtree(work / "out", ignore_errors=True)
    full_res_view(app, viewer, args.run_size, (args.run_size / 2, args.run_size / 2))
    n_pans = 6
    probe.reset()
    before = pans(app, viewer, layer, probe, n_pans, args.run_size)
    refreshes: list[float] = []
    runs = dock.big
    original = runs._refresh

    def timed_refresh() -> None:
        t = time.perf_counter()
        original()
        refreshes.append((time.perf_counter() - t) * 1000)

    runs._refresh = timed_refresh
    runs._refresh_timer.timeout.disconnect()
    runs._refresh_timer.timeout.connect(timed_refresh)
    base_procs = worker_processes()
    finished: list[float] = []
    original_event = runs._on_block_event

    def on_event(ev) -> None:
        if type(ev).__name__ == "Preview":
            finished.append(time.perf_counter())
        original_event(ev)

    runs._on_block_event = on_event
    shown_ms: list[float] = []
    original_result = runs._on_result

    def timed_result(outcome) -> None:  # the finished labels: in memory (a new layer) or the store's pyramid
        t = time.perf_counter()
        original_result(outcome)
        shown_ms.append((time.perf_counter() - t) * 1000)

    runs._on_result = timed_result
    t0 = time.perf_counter()
    dock.run()
    during: list[float] = []
    probe.reset()
    while len(finished) < args.cancel_after and dock.handle is not None:
        during += pans(app, viewer, layer, probe, 1, args.run_size)
    worst_run = probe.worst(4, t0=t0)
    first = finished[0] - t0 if finished else float("nan")
    procs = worker_processes()
    t_cancel = time.perf_counter()
    dock.cancel()
    idle_s = None
    wait(app, lambda: dock.handle is None)
    idle_s = time.perf_counter() - t_cancel
    wait(app, lambda: worker_processes() <= base_procs, timeout_s=120)
    gone_s = time.perf_counter() - t_cancel
    probe.reset()
    after = pans(app, viewer, layer, probe, n_pans, args.run_size)
    labels = next((lay for lay in viewer.layers if lay.name == f"{layer.name} [labels]"), None)
    level0 = (labels.data[0] if labels.multiscale else labels.data) if labels is not None else None
    shown = int(np.count_nonzero(np.asarray(level0[:args.run_size // 2, :args.run_size // 2]))) if \
        labels is not None else 0
    held = "in memory, paintable" if labels is not None and labels.editable else "read from its store"
    peer = before + after
    print(f"\n3. Run on {args.run_size}² ({f'made in {made:.0f} s, ' if made else ''}blocks of {args.block}, "
          f"1 local worker process): first block shown {first:.1f} s after Run; {len(finished)} block(s) "
          f"finished, the lazy labels layer refreshed {len(refreshes)} time(s) (each held the GUI thread median "
          f"{np.median(refreshes) if refreshes else 0:.0f} ms, worst {max(refreshes, default=0):.0f} ms)")
    print(f"   pans during the run: {len(during)}, worst stall per pan median {np.median(during):.0f} ms, worst "
          f"{max(during):.0f} ms; peer (the same pans, no job, {len(peer)} before and after): median "
          f"{np.median(peer):.0f} ms, worst {max(peer):.0f} ms; ratio of medians "
          f"{np.median(during) / max(np.median(peer), 1e-9):.2f}")
    print(f"   the worst gaps while it ran: {'; '.join(worst_run)}")
    if shown_ms:
        print(f"   the run's end: its labels shown as they finished in {shown_ms[0]:.0f} ms")
    print(f"   Cancel: the dock idle after {idle_s:.2f} s; worker processes {procs - base_procs} -> gone after "
          f"{gone_s:.2f} s; labelled pixels in the top-left quarter of the labels layer: {shown}; "
          f"the labels layer {held}; status: {dock.state.status.text}")
    viewer.layers.clear()
    if not args.keep:
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", type=Path, default=Path(tempfile.gettempdir()) / "dlmicro_slide.ome.zarr")
    p.add_argument("--size", type=int, default=50_000)
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--keep", action="store_true", help="keep the stores for the next run")
    p.add_argument("--rounds", type=int, default=2, help="timed runs of ours and of the peer each")
    p.add_argument("--train-steps", type=int, default=1000,
                   help="the preview's StarDist (300 steps can leave it finding objects only at tile borders)")
    p.add_argument("--run-size", type=int, default=8192)
    p.add_argument("--block", type=int, default=1024)
    p.add_argument("--cancel-after", type=int, default=6, help="blocks finished before Cancel")
    p.add_argument("--sample", action="store_true", help="say where the GUI thread was in each long stall (walking "
                   "another thread's frames has crashed CPython 3.11 here once, in the Run part)")
    p.add_argument("--skip", default="", help="parts to skip: any of 'pan', 'preview', 'run'")
    args = p.parse_args()
    from napari.settings import get_settings

    rendering = "asynchronous" if get_settings().experimental.async_ else "synchronous (NAPARI_ASYNC=1: asynchronous)"
    print(f"napari {napari.__version__} ({rendering} rendering), zarr {zarr.__version__}, {os.cpu_count()} cores, "
          f"load average at the start {load()}; --size {args.size} --chunk {args.chunk}")
    made = make_store(args.store, args.size, args.chunk)
    print(f"store {args.size}² ({len(zarr.open_group(str(args.store), mode='r'))} levels): "
          f"{f'written in {made:.0f} s' if made else 'reused'}, {disk_bytes(args.store) / 1e9:.2f} GB on disk")
    reads = Reads()
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(1366, 768)
    app = QApplication.instance()
    run_for(app, 1.0)
    probe = StallProbe(sample=args.sample)
    probe.start()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "pan" not in args.skip:
            pan_and_zoom(app, viewer, args.store, args, reads, probe)
        if "preview" not in args.skip or "run" not in args.skip:
            t0 = time.perf_counter()
            model = train_model(work / "models", args.train_steps)
            print(f"\nStarDist trained in {args.train_steps} steps in {time.perf_counter() - t0:.0f} s")
            _, dock = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
            dock._refresh_models(select=str(model))
            if "preview" not in args.skip:
                preview(app, viewer, args.store, dock, args, reads, probe)
            if "run" not in args.skip:
                run_and_cancel(app, viewer, dock, args, reads, probe, work)
    probe.stop()
    print(f"\nload average at the end {load()}")
    viewer.close()
    if not args.keep:
        shutil.rmtree(args.store, ignore_errors=True)


if __name__ == "__main__":
    main()
