"""The Segmentation dock on an OME-Zarr image opened lazily: preview of the view, blockwise run on dask, cancel."""
from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_image
from stardist.matching import matching

from napari_dlmicro.core.io.ome_zarr import open_image
from napari_dlmicro.core.runtime.events import Preview, PreviewKind


@pytest.fixture
def zarr_dock(make_napari_viewer, trained_stardist, right_half, tmp_path):
    img, _ = right_half
    path = tmp_path / "nuclei.ome.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(img, root, axes="yx", fmt=FormatV04(), scale={"y": 0.5, "x": 0.5}, storage_options={"chunks": (64, 64)})
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="napari-dlmicro")
    _, widget = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    widget._refresh_models(select=str(trained_stardist))
    widget.tile_spin.setValue(128)
    big = widget.state.blockwise
    big.workers, big.block_size, big.processes = 1, 256, False  # one worker in this process: a small test image
    big.output_folder = str(tmp_path / "out")
    return viewer, widget, path


def _wait_idle(qtbot, widget, timeout=180_000):
    qtbot.waitUntil(lambda: widget.handle is None, timeout=timeout)


def test_a_store_opens_as_a_lazy_layer_the_dock_segments_blockwise(zarr_dock, qtbot, right_half):
    viewer, widget, _ = zarr_dock
    _, gt = right_half
    layer = viewer.layers["nuclei"]
    assert not isinstance(layer.data, np.ndarray)  # read lazily from the store
    seen, on_event = [], widget.big._on_block_event

    def recorded(ev):
        on_event(ev)
        shown = "nuclei [labels]" in viewer.layers
        seen.append((type(ev).__name__, shown, shown and viewer.layers["nuclei [labels]"].editable))

    widget.big._on_block_event = recorded
    widget.run()
    assert widget.handle is not None
    _wait_idle(qtbot, widget)
    previews = [shown for kind, shown, _ in seen if kind == "Preview"]
    assert previews and all(previews)  # the labels layer is there before the first block: made as the run starts
    assert not any(editable for kind, _, editable in seen if kind == "Preview")  # the run writes into its store
    labels = viewer.layers["nuclei [labels]"]
    assert tuple(labels.scale) == (0.5, 0.5)
    # finished and small enough to hold: in memory, so the user can correct it with napari's brush
    assert isinstance(labels.data, np.ndarray) and labels.editable
    labels.paint((10, 10), 77)
    assert labels.data[10, 10] == 77
    # the store the layer shows is the run's output, readable by ome-zarr's reader path we use for inputs
    written = open_image(widget.big.result.labels)
    assert np.asarray(written.levels[0]).shape == gt.shape
    assert matching(gt, np.asarray(labels.data[0] if labels.multiscale else labels.data), thresh=0.5).f1 >= 0.3
    assert "objects in" in widget.count_label.text() and widget.state.status.text == "Done"


def test_preview_reads_only_the_region_in_view(zarr_dock, qtbot):
    viewer, widget, _ = zarr_dock
    layer = viewer.layers["nuclei"]
    region = {"Y": slice(64, 192), "X": slice(0, 128)}
    # what Preview view does with the region napari reports in view
    widget.handle = widget.track(widget.big.preview(layer, region))
    _wait_idle(qtbot, widget)
    preview = viewer.layers["nuclei [preview labels]"]
    assert preview.data.shape == (128, 128)
    assert preview.data.dtype == np.uint16  # drawn without napari hashing each id on its thread
    assert tuple(preview.translate) == (32.0, 0.0)  # placed over the image: 64 px at 0.5 µm
    assert "in view" in widget.count_label.text()
    # a second preview elsewhere moves the same layer (no new controls, no new canvas node)
    widget.handle = widget.track(widget.big.preview(layer, {"Y": slice(0, 64), "X": slice(128, 256)}))
    _wait_idle(qtbot, widget)
    assert viewer.layers["nuclei [preview labels]"] is preview
    assert preview.data.shape == (64, 128) and tuple(preview.translate) == (0.0, 64.0)
    assert [lay.name for lay in viewer.layers].count("nuclei [preview labels]") == 1
    preview.paint((5, 5), 500)  # corrected by the user: the next preview leaves it
    widget.handle = widget.track(widget.big.preview(layer, {"Y": slice(0, 64), "X": slice(0, 64)}))
    _wait_idle(qtbot, widget)
    assert viewer.layers["nuclei [preview labels] (edited)"] is preview and preview.data[5, 5] == 500
    assert viewer.layers["nuclei [preview labels]"].data.shape == (64, 64)


def test_an_existing_output_is_refused_unless_resumed(zarr_dock, qtbot, tmp_path):
    viewer, widget, _ = zarr_dock
    (tmp_path / "out" / "nuclei_labels.ome.zarr").mkdir(parents=True)
    widget.run()
    assert widget.handle is None  # a message, no job
    widget.big_section.resume_check.setChecked(True)
    widget.state.blockwise.scheduler = "not an address"
    widget.run()
    assert widget.handle is None


def test_cancel_stops_the_blockwise_run_and_says_how_to_resume(zarr_dock, qtbot):
    viewer, widget, _ = zarr_dock
    widget.state.blockwise.block_size = 256
    widget.run()
    widget.cancel()
    assert widget.handle is None and not widget.state.status.running
    assert "Resume" in widget.state.status.text


def test_the_run_labels_layer_is_refreshed_only_for_numbered_blocks_in_view(zarr_dock):
    viewer, widget, _ = zarr_dock
    runs = widget.big
    runs.output = viewer.add_labels(np.zeros((256, 256), np.uint32), name="nuclei [labels]")
    refreshed = []
    runs.output.refresh = lambda *a, **k: refreshed.append(1)
    block = (slice(0, 128), slice(0, 128))

    def finished(dtype):
        runs._last_refresh = 0.0  # long ago: a refresh due now happens at once
        runs._on_block_event(Preview(np.ones((128, 128), dtype), block, PreviewKind.LABELS))

    finished(np.uint64)  # the segment pass: provisional ids, not in the store the layer shows
    assert refreshed == [] and not runs._refresh_timer.isActive()
    finished(np.uint32)  # numbered, and the whole layer is in view
    assert refreshed == [1]
    runs.output.corner_pixels = np.array([[140, 140], [250, 250]])  # as napari sets it for a view zoomed elsewhere
    finished(np.uint32)
    assert refreshed == [1] and not runs._refresh_timer.isActive()


def test_a_labels_layer_from_a_store_is_reused_for_the_next_store(make_napari_viewer, tmp_path):
    from napari_dlmicro.widgets._lazy_layers import store_labels_layer

    viewer = make_napari_viewer()
    like = viewer.add_image(np.zeros((128, 128), np.float32), scale=(0.5, 0.5))
    groups = []
    for k in (1, 2):
        group = tmp_path / f"run{k}.zarr"
        for level, size in enumerate((128, 64)):
            zarr.create_array(str(group / str(level)), shape=(size, size), dtype=np.uint32, chunks=(64, 64),
                              zarr_format=2)[:] = k
        groups.append(group)
    first = store_labels_layer(viewer, groups[0], like, "img [labels]")
    second = store_labels_layer(viewer, groups[1], like, "img [labels]")
    assert second is first and first.multiscale and tuple(first.scale) == (0.5, 0.5) and not first.editable
    assert int(np.asarray(first.data[0][0, 0])) == 2  # the second store's levels
    assert [lay.name for lay in viewer.layers].count("img [labels]") == 1


def test_finished_labels_the_user_painted_on_are_kept_when_the_next_run_shows_its_own(make_napari_viewer, tmp_path):
    from napari_dlmicro.widgets._lazy_layers import finished_labels, store_labels_layer

    viewer = make_napari_viewer()
    like = viewer.add_image(np.zeros((128, 128), np.float32))
    group = tmp_path / "run.zarr"
    for level, size in enumerate((128, 64)):
        zarr.create_array(str(group / str(level)), shape=(size, size), dtype=np.uint32, chunks=(64, 64),
                          zarr_format=2)[:] = 1
    held = finished_labels(group)
    first = store_labels_layer(viewer, group, like, "img [labels]", held=held)
    assert first.editable and first.data is held
    first.paint((5, 5), 9)  # one brush step: napari's undo history, and its paint event
    second = store_labels_layer(viewer, group, like, "img [labels]")  # a new run starts over the same name
    assert second is not first and first in viewer.layers and first.name == "img [labels] (edited)"
    assert first.data[5, 5] == 9 and second.name == "img [labels]" and not second.editable


def test_a_tiff_too_big_to_read_whole_opens_lazily_and_runs_blockwise_from_the_file(
        make_napari_viewer, trained_stardist, right_half, tmp_path, monkeypatch, qtbot):
    import tifffile

    from napari_dlmicro.core.io import lazy
    from napari_dlmicro.core.io.sources import TiffSource
    from napari_dlmicro.widgets._lazy_layers import is_big, lazy_image_of

    img, gt = right_half
    tifffile.imwrite(tmp_path / "slide.tif", img, tile=(64, 64))
    monkeypatch.setattr(lazy, "LAZY_TIFF_BYTES", 1024)  # the test image counts as too big to read whole
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "slide.tif"), plugin="napari-dlmicro")
    layer = viewer.layers["slide"]
    assert is_big(layer) and not isinstance(layer.data, np.ndarray)
    assert isinstance(lazy_image_of(layer, "YX").source, TiffSource)  # workers read the file, not the layer
    _, widget = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    widget._refresh_models(select=str(trained_stardist))
    widget.image_combo.setCurrentText("slide")
    big = widget.state.blockwise
    big.workers, big.block_size, big.processes = 1, 256, False
    big.output_folder = str(tmp_path / "out")
    widget.run()
    _wait_idle(qtbot, widget)
    labels = viewer.layers["slide [labels]"]
    assert matching(gt, np.asarray(labels.data[0] if labels.multiscale else labels.data), thresh=0.5).f1 >= 0.3
