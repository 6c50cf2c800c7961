"""The whole loop in a real viewer: annotate, add to the training set, train, segment, evaluate."""
import numpy as np
import pytest

from napari_dlmicro.core.data.training_sets import summarize
from napari_dlmicro.core.models.store import list_models


@pytest.fixture
def docks(make_napari_viewer, nuclei):
    from napari_dlmicro.widgets.annotation import AnnotationWidget
    from napari_dlmicro.widgets.evaluate import EvaluateWidget
    from napari_dlmicro.widgets.segmentation import SegmentationWidget
    from napari_dlmicro.widgets.training import TrainingWidget

    viewer = make_napari_viewer()
    img, _ = nuclei
    viewer.add_image(img[:256, :256], name="nuclei", scale=(0.5, 0.5))
    return viewer, AnnotationWidget(viewer), TrainingWidget(viewer), SegmentationWidget(viewer), EvaluateWidget(viewer)


def test_annotate_add_train_segment_loop(docks, nuclei, qtbot, tmp_path):
    viewer, ann, train, seg, ev = docks
    _, gt = nuclei
    layer = ann.new_annotation()
    assert layer.data.shape == (256, 256) and tuple(layer.scale) == (0.5, 0.5) and layer.mode == "paint"
    painted = gt[:256, :256].astype(np.uint32) * 2  # "painted" ids with gaps
    painted[10, 10] = 0
    layer.data = painted
    ann.relabel()
    assert layer.data.max() == len(np.unique(gt[:256, :256])) - 1
    ann.min_size.setValue(5)
    ann.remove_small()

    roi = ann.roi_layer()
    roi.add_rectangles(np.array([[0, 0], [96, 96]]) * 0.5 + np.array([[0, 0], [0, 0]]))  # world coordinates
    roi.add_rectangles(np.array([[0, 0], [128, 128]]))  # the last rectangle counts
    ann.folder_edit.setText(str(tmp_path / "set"))
    name = ann.add_to_training_set()
    assert name == "nuclei"
    s = summarize(tmp_path / "set")
    assert s.n_images == 1 and s.shapes == ((128, 128),)
    viewer.layers.remove(roi)
    assert ann.add_to_training_set() == "nuclei_2"  # never overwritten
    assert summarize(tmp_path / "set").n_images == 2

    train.set_folder(str(tmp_path / "set"))
    assert "2 images" in train.summary.text()
    train.name_edit.setText("loop-model")
    train.epochs.setValue(1)
    train.patch.setValue(64)
    train.val_every.setValue(10)
    handle = train.start()
    qtbot.waitUntil(lambda: handle.finished, timeout=180_000)
    assert train.result is not None and train.result.history
    assert any(m.name == "loop-model" for m in list_models())
    assert seg.model_combo.findText("loop-model") >= 0  # listed in the segmentation dock at once
    assert train.continue_button.isEnabled()

    ann.model_combo.setCurrentIndex(ann.model_combo.findText("loop-model"))
    viewer.layers.remove(layer)
    job = ann.pre_annotate()
    qtbot.waitUntil(lambda: job.finished, timeout=60_000)
    assert "nuclei [annotation]" in viewer.layers

    viewer.add_labels(gt[:256, :256], name="truth")
    ev._refresh()
    ev.pred_combo.setCurrentText("nuclei [annotation]")
    ev.gt_combo.setCurrentText("truth")
    h = ev.evaluate()
    qtbot.waitUntil(lambda: h.finished, timeout=30_000)
    assert ev.scores is not None and len(ev.scores) == 5
    assert "nuclei [annotation] [errors]" in viewer.layers


def test_edit_tools_in_the_viewer(docks):
    viewer, ann, *_ = docks
    layer = ann.new_annotation()
    data = np.zeros((256, 256), np.uint32)
    data[10:40, 10:40] = 1
    data[60:70, 60:70] = 2
    layer.data = data
    ann.delete_at_cursor(position=(65 * 0.5, 65 * 0.5))
    assert not (layer.data == 2).any()
    pts = ann._points_layer()
    layer.data = np.where(np.arange(256)[None, :] > 25, layer.data * 3, layer.data) * (layer.data > 0)
    pts.add([[20, 20], [20, 30]])
    ann.merge()
    assert len(np.unique(layer.data)) == 2
    lines = ann._lines_layer()
    lines.add_paths(np.array([[5, 25], [45, 25]]))
    ann.split()
    assert len(np.unique(layer.data)) == 3
    assert layer.selected_label == layer.data.max() + 1
