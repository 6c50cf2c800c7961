"""3D annotation in a real viewer: a z-stack annotated plane by plane, saved as a 3D pair, never mixed with 2D."""
from __future__ import annotations

import numpy as np
import pytest

from napari_dlmicro.core.data.training_sets import add_pair, load_pairs, summarize

SCALE = (2.0, 0.5, 0.5)
TRANSLATE = (4.0, 0.0, 0.0)


def blobs_3d(shape=(8, 64, 64), n=12, seed=0):
    """Synthetic nuclei: ``n`` separate ellipsoids, and a noisy image of them."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.uint16)
    centres = [(z, y, x) for z in (2.5, 5.5) for y in (10, 26, 42, 56) for x in (10, 32, 54)]
    for k, (z, y, x) in enumerate(centres[:n], start=1):
        inside = ((zz - z) / 2.2) ** 2 + ((yy - y) / 5.5) ** 2 + ((xx - x) / 6.5) ** 2 <= 1
        labels[inside & (labels == 0)] = k
    image = (labels > 0).astype(np.float32) + 0.1 * rng.standard_normal(shape).astype(np.float32)
    return image, labels


@pytest.fixture
def stack(make_napari_viewer, monkeypatch):
    """A viewer with an 8x64x64 z-stack (anisotropic scale, shifted in Z), the Annotation dock, and its errors."""
    from napari_dlmicro.widgets import annotation
    from napari_dlmicro.widgets.annotation import AnnotationWidget

    errors: list[str] = []
    monkeypatch.setattr(annotation, "show_error", errors.append)
    viewer = make_napari_viewer()
    image, _ = blobs_3d()
    viewer.add_image(image, name="stack", scale=SCALE, translate=TRANSLATE)
    return viewer, AnnotationWidget(viewer), errors


def _show_plane(viewer, z: int) -> None:
    viewer.dims.set_current_step(0, z)  # what moving the Z slider does
    assert viewer.dims.point[0] == pytest.approx(TRANSLATE[0] + SCALE[0] * z)


def test_new_annotation_matches_the_stack(stack):
    _, ann, errors = stack
    layer = ann.new_annotation()
    assert layer.data.shape == (8, 64, 64) and layer.data.dtype == np.uint32
    assert tuple(layer.scale) == SCALE and tuple(layer.translate) == TRANSLATE
    assert layer.mode == "paint" and layer.selected_label == 1
    assert ann.new_annotation() is layer  # pressing again keeps the work
    assert not errors


def test_delete_at_cursor_acts_in_the_plane_shown(stack):
    viewer, ann, errors = stack
    layer = ann.new_annotation()
    data = np.zeros((8, 64, 64), np.uint32)
    data[1:4, 10:30, 10:30] = 1  # one nucleus painted on planes 1..3
    data[2, 40:50, 40:50] = 2  # painted on plane 2 only
    layer.data = data
    _show_plane(viewer, 2)
    # the cursor was last moved over plane 0; the Z slider has moved since
    viewer.cursor.position = (TRANSLATE[0], 20 * 0.5, 20 * 0.5)
    ann.delete_at_cursor()
    assert not layer.data[2, 10:30, 10:30].any()
    assert (layer.data[1, 10:30, 10:30] == 1).all() and (layer.data[3, 10:30, 10:30] == 1).all()
    assert (layer.data[2, 40:50, 40:50] == 2).all()
    ann.delete_at_cursor(position=(45 * 0.5, 45 * 0.5))  # world Y, X on the plane shown
    assert not (layer.data == 2).any()
    # with the layer's "n edit dim" at 3, the whole object goes
    layer.n_edit_dimensions = 3
    _show_plane(viewer, 1)
    ann.delete_at_cursor(position=(15 * 0.5, 15 * 0.5))
    assert not layer.data.any()
    ann.delete_at_cursor(position=(99.0, 99.0))  # outside: a message, not a traceback
    assert errors and "outside" in errors[-1]


def test_fill_remove_relabel_cover_the_volume(stack):
    viewer, ann, errors = stack
    layer = ann.new_annotation()
    data = np.zeros((8, 64, 64), np.uint32)
    data[1:4, 10:20, 10:20] = 5
    data[1, 14, 14] = data[3, 15, 15] = 0  # holes in planes 1 and 3
    data[2:6, 40:44, 40:44] = 7  # 16 pixels a plane, 64 voxels in all
    data[6, 50:53, 50:53] = 9  # a 9-voxel speck
    layer.data = data
    _show_plane(viewer, 2)
    ann.fill_holes()
    assert layer.data[1, 14, 14] == 5 and layer.data[3, 15, 15] == 5  # every plane, not just the one shown
    ann.min_size.setValue(20)
    ann.remove_small()
    assert not (layer.data == 9).any() and (layer.data == 7).sum() == 64  # voxels of the 3D object count
    ann.relabel()
    assert set(np.unique(layer.data)) == {0, 1, 2}
    assert (layer.data[1:4, 12, 12] == 1).all() and (layer.data[2:6, 41, 41] == 2).all()  # one id across planes
    assert layer.selected_label == 3
    ann.next_id()
    assert layer.selected_label == 3 and layer.mode == "paint"
    assert not errors


def test_merge_and_split_in_plane(stack):
    viewer, ann, errors = stack
    layer = ann.new_annotation()
    data = np.zeros((8, 64, 64), np.uint32)
    data[1:4, 10:30, 10:20] = 1
    data[1:4, 10:30, 20:30] = 2  # two touching objects on planes 1..3
    layer.data = data
    _show_plane(viewer, 2)
    pts = ann._points_layer()
    assert tuple(pts.scale) == SCALE and tuple(pts.translate) == TRANSLATE
    pts.add(np.array([[2, 20, 15], [2, 20, 25]]))  # clicked on plane 2 (layer pixels)
    ann.merge()
    assert (layer.data[2, 10:30, 10:30] == 1).all()
    assert (layer.data[[1, 3], 10:30, 20:30] == 2).all()  # other planes untouched
    pts.add(np.array([[1, 20, 15], [3, 20, 25]]))  # points in two planes link the objects in the volume
    ann.merge()
    assert set(np.unique(layer.data)) == {0, 1}

    lines = ann._lines_layer()
    assert tuple(lines.scale) == SCALE
    lines.add_paths(np.array([[2, 20, 5], [2, 20, 35]]))  # drawn across the object on plane 2
    ann.split()
    assert set(np.unique(layer.data[2])) == {0, 1, 2}
    assert set(np.unique(layer.data[1])) == {0, 1} and set(np.unique(layer.data[3])) == {0, 1}
    assert layer.selected_label == 3
    lines.add_paths(np.array([[3, 5, 20], [3, 35, 20]]))  # drawn on plane 3, then the slider moved on
    _show_plane(viewer, 6)
    ann.split()
    assert set(np.unique(layer.data[3])) == {0, 1, 3} and set(np.unique(layer.data[1])) == {0, 1}
    assert not errors


def test_add_3d_pair_to_a_training_set(stack, tmp_path):
    _, ann, errors = stack
    image, truth = blobs_3d()
    layer = ann.new_annotation()
    layer.data = truth.astype(np.uint32)
    roi = ann.roi_layer()
    roi.add_rectangles(np.array([[2, 8, 8], [2, 8, 48], [2, 40, 48], [2, 40, 8]]))  # on plane 2: crops Y, X only
    ann.folder_edit.setText(str(tmp_path / "set3d"))
    assert ann.add_to_training_set() == "stack"
    s = summarize(tmp_path / "set3d")
    assert s.n_images == 1 and s.shapes == ((8, 32, 40),)
    (pair,) = load_pairs(tmp_path / "set3d")
    assert pair.image.shape == (8, 32, 40) and np.allclose(pair.image, image[:, 8:40, 8:48])
    assert np.array_equal(pair.mask, truth[:, 8:40, 8:48])
    assert pair.meta["crop"] == [[0, 8], [8, 40], [8, 48]]
    assert "1 images" in ann.summary.text()
    assert not errors


def test_mixing_2d_and_3d_is_refused_with_a_message(stack, tmp_path):
    viewer, ann, errors = stack
    flat = np.zeros((64, 64), np.uint16)
    flat[10:20, 10:20] = 1
    add_pair(tmp_path / "set2d", np.random.default_rng(0).random((64, 64)), flat, "flat")
    layer = ann.new_annotation()
    _, truth = blobs_3d()
    layer.data = truth.astype(np.uint32)
    ann.folder_edit.setText(str(tmp_path / "set2d"))
    assert ann.add_to_training_set() is None
    assert "holds 2D annotations" in errors[-1] and "this one is 3D" in errors[-1]
    assert "Traceback" not in errors[-1]
    assert summarize(tmp_path / "set2d").n_images == 1
    assert layer in viewer.layers and np.array_equal(layer.data, truth)  # the annotation is kept

    # and a 2D annotation is refused by a 3D set
    ann.folder_edit.setText(str(tmp_path / "set3d"))
    assert ann.add_to_training_set() == "stack"
    viewer.add_image(np.random.default_rng(1).random((64, 64)), name="plane")
    ann.image_combo.setCurrentText("plane")
    flat_layer = ann.new_annotation()
    flat_layer.data = flat.astype(np.uint32)
    assert ann.add_to_training_set() is None
    assert "holds 3D annotations" in errors[-1] and "this one is 2D" in errors[-1]
    assert summarize(tmp_path / "set3d").n_images == 1 and "plane [annotation]" in viewer.layers


def test_training_dock_refuses_3d_set_for_a_2d_model(make_napari_viewer, qtbot, tmp_path):
    from napari_dlmicro.core.models.paths import store_dir
    from napari_dlmicro.core.models.stardist.folder import save_stardist
    from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
    from napari_dlmicro.core.models.stardist.settings import StarDistTraining
    from napari_dlmicro.core.models.stardist.train import build_network
    from napari_dlmicro.widgets.training import TrainingWidget

    net, _ = build_network(StarDistTraining(depth=1, filters=8, n_rays=8), 2, 1)
    save_stardist(StarDistSegmenter(net, name="tiny-2d"), store_dir() / "tiny-2d")
    image, truth = blobs_3d()
    add_pair(tmp_path / "set3d", image, truth, "stack")
    viewer = make_napari_viewer()
    train = TrainingWidget(viewer)
    train.set_folder(str(tmp_path / "set3d"))
    train.init_combo.setCurrentIndex(train.init_combo.findText("tiny-2d"))
    train.train_button.click()
    qtbot.waitUntil(lambda: train.handle.finished, timeout=30_000)
    assert "2D model but the annotations are 3D" in train.status.text()
    assert train.result is None and train.train_button.isEnabled()

    # a set that mixes 2D and 3D pairs (files put there by hand) is refused as clearly
    add_pair(tmp_path / "set3d", image[2], truth[2], "one-plane")
    train.init_combo.setCurrentIndex(0)
    train.train_button.click()
    qtbot.waitUntil(lambda: train.handle.finished, timeout=30_000)
    assert "mixes 2D" in train.status.text() and "3D" in train.status.text()
    assert "unexpected" not in train.status.text()


def test_delete_at_cursor_in_the_3d_view_removes_the_object_hit(stack):
    viewer, ann, errors = stack
    layer = ann.new_annotation()
    data = np.zeros((8, 64, 64), np.uint32)
    data[1:4, 10:30, 10:30] = 1
    data[5:7, 10:30, 10:30] = 2  # behind object 1, seen along Z
    layer.data = data
    viewer.dims.ndisplay = 3
    viewer.cursor.position = (TRANSLATE[0] - 5.0, 20 * 0.5, 20 * 0.5)  # in front of the stack, looking along +Z
    viewer.cursor._view_direction = np.array([1.0, 0.0, 0.0])
    ann.delete_at_cursor()
    assert not (layer.data == 1).any() and (layer.data == 2).sum() == 2 * 20 * 20
    assert not errors
