"""The Classification dock in a real viewer: clicks classify every object, suggest, why, deep training with Stop
and Cancel, the model store, CSV, labels that change under the clicks, and bad input as a line in the dock."""
from __future__ import annotations

import numpy as np
import pytest
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.events import Event
from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

from napari_dlmicro.state.classification import ClassificationState
from napari_dlmicro.widgets.classification import ClassificationWidget

SCALE = (0.5, 0.5)


def two_kinds(shape=(96, 96), seed=0):
    """Small bright squares and big dim squares: the image, the labels and each id's kind (odd: small)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(10.0, 2.0, shape).astype(np.float32)
    labels = np.zeros(shape, np.uint16)
    label = 0
    for y in range(4, shape[0] - 14, 16):
        for x in range(4, shape[1] - 14, 16):
            label += 1
            side = 11 if label % 2 == 0 else 5
            labels[y:y + side, x:x + side] = label
            image[y:y + side, x:x + side] += 30.0 if label % 2 == 0 else 80.0
    return image, labels


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    image, labels = two_kinds()
    viewer.add_image(image, name="cells", scale=SCALE)
    viewer.add_labels(labels, name="cells labels", scale=SCALE)
    _, widget = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Classification")
    assert isinstance(widget, ClassificationWidget)
    widget.state.rename_class(0, "small")
    widget.state.rename_class(1, "big")
    wait_idle(qtbot, widget)
    assert widget.measured is not None and len(widget.measured.features.ids) == 25
    return viewer, widget


def wait_idle(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: widget.handle is None and not widget._click_timer.isActive()
                    and not widget._labels_timer.isActive() and not widget._markers_timer.isActive(),
                    timeout=timeout)


def centre(widget, label: int) -> np.ndarray:
    """The world position of object ``label``'s centre."""
    f = widget.measured.features
    return np.asarray(f.centroids[f.rows([label])][0]) * SCALE


def click(layer, position, drag_px: float = 0.0) -> None:
    """A mouse click at world ``position`` on ``layer``, as napari delivers it (``drag_px``: the mouse moves
    this far on the screen between press and release)."""
    steps = [("mouse_press", mouse_press_callbacks, 10.0)]
    if drag_px:
        steps.append(("mouse_move", mouse_move_callbacks, 10.0 + drag_px))
    steps.append(("mouse_release", mouse_release_callbacks, 10.0 + drag_px))
    for kind, deliver, pos in steps:
        event = ReadOnlyWrapper(Event(type_name=kind, is_dragging=kind == "mouse_move", modifiers=[],
                                      position=tuple(position), pos=np.array([pos, pos]), view_direction=None,
                                      dims_displayed=[0, 1], button=1), exceptions=("handled",))
        deliver(layer, event)


def label_some(viewer, widget, qtbot, small=(1, 3, 5), big=(2, 4, 6)):
    layer = viewer.layers["cells labels"]
    for index, ids in ((0, small), (1, big)):
        widget.state.select(index)
        for i in ids:
            click(layer, centre(widget, i))
    wait_idle(qtbot, widget)


def test_clicks_classify_every_object_and_the_results_show(dock, qtbot, tmp_path):
    viewer, widget = dock
    label_some(viewer, widget, qtbot)
    assert widget.state.table == {1: "small", 3: "small", 5: "small", 2: "big", 4: "big", 6: "big"}
    remembered = ClassificationState()
    remembered.restore()
    assert remembered.class_names == ("small", "big")  # the next session starts with these classes
    classes = viewer.layers["cells labels [classes]"]
    assert tuple(classes.scale) == SCALE
    labels = viewer.layers["cells labels"]
    truth = np.where(labels.data > 0, np.where(labels.data % 2 == 0, 2, 1), 0)
    assert (np.asarray(classes.data) == truth).mean() > 0.95
    features = labels.features
    assert {"class", "probability", "p_small", "p_big"} <= set(features.columns) and len(features) == 25
    assert widget.form.counts.text().startswith("25 objects: small") and "(3 clicked)" in widget.form.counts.text()
    marks = np.asarray(viewer.layers["cells labels [clicks]"].data)
    assert len(widget.markers.shown) == 6 and set(np.unique(marks)) == {0, 1, 2, 3}  # ring, small, big
    assert all(marks[tuple(c)] == k + 2 for k, c in widget.markers.shown.values())  # each dot in its class
    qtbot.waitUntil(lambda: "accuracy" in widget.form.accuracy.text(), timeout=60_000)
    assert "<table" in widget.form.confusion.text()

    suggested = widget.suggest()
    assert len(suggested) == 10 and not set(suggested) & set(widget.state.table)
    assert len(viewer.layers["cells labels [suggest]"].data) == 10

    widget.why(2)
    wait_idle(qtbot, widget)
    assert "object 2: big" in widget.form.why_label.text()
    assert "cells labels [why]" in viewer.layers

    out = widget.export_csv(tmp_path / "classes.csv")
    assert out.read_text().splitlines()[0] == "label,class,probability" and len(out.read_text().splitlines()) == 26
    clicks = widget.export_clicks(tmp_path / "clicks.csv")
    assert len(clicks.read_text().splitlines()) == 7

    widget.state.name = "sizes"
    widget.save()
    wait_idle(qtbot, widget)
    qtbot.waitUntil(lambda: widget.form.model_combo.findText("sizes") >= 0, timeout=10_000)
    widget.form.model_combo.setCurrentIndex(widget.form.model_combo.findText("sizes"))
    widget.classify()
    wait_idle(qtbot, widget)
    assert widget.state.status.text == "classified with 'sizes'"


def test_a_second_click_with_the_same_class_unlabels_and_a_drag_labels_nothing(dock, qtbot):
    viewer, widget = dock
    layer = viewer.layers["cells labels"]
    click(layer, centre(widget, 1))
    assert widget.state.table == {1: "small"}
    click(layer, centre(widget, 1))
    assert widget.state.table == {}
    click(layer, (0.2, 0.2))  # the background
    click(layer, centre(widget, 3), drag_px=20)  # a pan that starts on an object
    assert widget.state.table == {}
    click(layer, centre(widget, 3), drag_px=2)  # a hand that shakes a little still clicks
    assert widget.state.table == {3: "small"}


def test_clicks_follow_the_objects_when_the_labels_change(dock, qtbot):
    viewer, widget = dock
    label_some(viewer, widget, qtbot, small=(1,), big=(2,))
    layer = viewer.layers["cells labels"]
    layer.data = np.where(layer.data > 0, layer.data + 100, 0).astype(np.uint16)  # re-segmented, new ids
    qtbot.waitUntil(lambda: widget.state.table == {101: "small", 102: "big"}, timeout=60_000)
    wait_idle(qtbot, widget)
    assert widget.measured.matches(layer.data)


def test_an_empty_labels_layer_waits_for_objects_without_an_error(dock, qtbot, monkeypatch):
    viewer, widget = dock
    errors = []
    monkeypatch.setattr("napari_dlmicro.workers.show_error", errors.append)
    image, labels = two_kinds()
    viewer.add_labels(np.zeros_like(labels), name="being segmented", scale=SCALE)
    widget.form.labels_combo.setCurrentText("being segmented")
    wait_idle(qtbot, widget)
    assert errors == [] and widget.state.status.text.startswith("no objects in being segmented yet")
    viewer.layers["being segmented"].data = labels  # the segmentation's result arrives
    qtbot.waitUntil(lambda: widget.measured is not None and widget.measured.matches(labels), timeout=60_000)
    assert errors == []


def test_bad_input_is_one_line_in_the_dock(dock, qtbot):
    viewer, widget = dock
    widget.why(1)
    assert widget.state.status.text.startswith("Error: there is no classification to explain yet")
    widget.save()
    assert widget.state.status.text.startswith("Error: there is no classifier to save yet")
    label_some(viewer, widget, qtbot, small=(1,), big=())
    widget.train()
    assert widget.state.status.text.startswith("Error: the class 'big' has no labelled objects")
    viewer.add_labels(np.zeros((40, 40), np.uint16), name="other")
    widget.form.labels_combo.setCurrentText("other")
    wait_idle(qtbot, widget)
    assert "does not match the image" in widget.state.status.text
    assert widget.state.table == {1: "small"}  # nothing clicked is lost


def test_deep_training_shows_curves_classifies_and_stops_or_cancels(dock, qtbot):
    viewer, widget = dock
    label_some(viewer, widget, qtbot, small=(1, 3, 5, 7, 9), big=(2, 4, 6, 8, 10))
    widget.form.kind_combo.setCurrentIndex(widget.form.kind_combo.findData("deep"))
    assert widget.state.kind == "deep" and not widget.form.stop_button.isHidden()
    values = widget.state.values
    for name, value in (("pretrained", False), ("crop", 32), ("batch", 4), ("epochs", 2)):
        values.set(name, value)
    widget.state.name = "deep-sizes"
    widget.train()
    assert widget.form.stop_button.isEnabled() and not widget.form.train_button.isEnabled()
    wait_idle(qtbot, widget, timeout=300_000)
    assert widget.state.status.text.startswith("trained (budget); saved as 'deep-sizes'"), widget.state.status.text
    assert widget.form.plot.x and "cells labels [classes]" in viewer.layers
    widget.why(2)
    wait_idle(qtbot, widget)
    assert "Grad-CAM" in widget.form.why_label.text()

    values.set("epochs", 10_000)
    widget.train()
    qtbot.waitUntil(lambda: len(widget.form.plot.x) > 0, timeout=300_000)  # training steps are under way
    widget.stop()
    wait_idle(qtbot, widget, timeout=300_000)
    assert "stopped" in widget.state.status.text

    widget.train()
    widget.cancel()
    assert widget.handle is None and widget.form.train_button.isEnabled()  # idle at the click
    assert widget.state.status.text == "Cancelled: the clicks are kept" and len(widget.state.table) == 10


def press(viewer, qtbot, key: str) -> None:
    """Press and release ``key`` on napari's canvas, as a user does: napari's keymap handles it."""
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, key)


def test_keys_1_to_9_pick_the_class_and_w_explains_the_object_under_the_cursor(dock, qtbot):
    viewer, widget = dock
    labels = viewer.layers["cells labels"]
    widget.state.add_class("dividing")
    assert viewer.layers.selection.active is labels
    press(viewer, qtbot, "2")
    assert widget.state.current == 1 and widget.form.classes.keys[1].isChecked()
    press(viewer, qtbot, "3")
    assert widget.state.current == 2
    press(viewer, qtbot, "1")
    assert widget.state.current == 0 and str(labels.mode) == "pan_zoom"  # napari's own 1-9 bindings are not run
    press(viewer, qtbot, "4")  # there is no class 4: said in the dock, the class stays
    assert widget.state.current == 0 and "there is no class 4" in widget.state.status.text
    click(labels, centre(widget, 1))
    assert widget.state.table == {1: "small"}  # the key chose the class the click assigns

    widget.state.remove_class(2)
    label_some(viewer, widget, qtbot, small=(3,), big=(2, 4))
    viewer.layers.selection.active = viewer.layers["cells labels [classes]"]  # the keys work on the dock's layers too
    press(viewer, qtbot, "2")
    assert widget.state.current == 1
    viewer.cursor.position = tuple(centre(widget, 4))
    press(viewer, qtbot, "w")
    wait_idle(qtbot, widget)
    assert widget.form.why_label.text().startswith("object 4: big")
    assert "cells labels [why]" in viewer.layers


def move(layer, position) -> None:
    """The mouse moves to world ``position`` over ``layer`` (no button held), as napari delivers it."""
    event = ReadOnlyWrapper(Event(type_name="mouse_move", is_dragging=False, modifiers=[], position=tuple(position),
                                  pos=np.array([10.0, 10.0]), view_direction=None, dims_displayed=[0, 1],
                                  button=0), exceptions=("handled",))
    mouse_move_callbacks(layer, event)


def test_explain_on_hover_follows_the_cursor_and_is_remembered(dock, qtbot):
    viewer, widget = dock
    label_some(viewer, widget, qtbot)
    labels = viewer.layers["cells labels"]
    move(labels, centre(widget, 8))
    assert not widget.hover.busy  # off by default: moving explains nothing
    widget.form.hover_check.setChecked(True)
    remembered = ClassificationState()
    remembered.restore()
    assert remembered.hover  # the next session explains on hover too

    for label in (8, 9, 11):  # the cursor passes over two objects and rests on the third
        move(labels, centre(widget, label))
    qtbot.waitUntil(lambda: not widget.hover.busy, timeout=60_000)
    assert widget.hover.shown == 11 and widget.form.why_label.text().startswith("object 11: small")
    why = viewer.layers["cells labels [why]"]
    f = widget.measured.features
    top_left = np.asarray(why.translate) / SCALE  # the image lies over the object
    assert np.all(top_left <= f.centroids[f.rows([11])][0]) and float(np.asarray(why.data).max()) > 0
    assert widget.state.status.text == "object 11: small"  # explaining on hover holds no other job up

    move(labels, centre(widget, 12))
    qtbot.waitUntil(lambda: widget.hover.shown == 12 and not widget.hover.busy, timeout=60_000)
    assert widget.form.why_label.text().startswith("object 12: big")
    assert viewer.layers["cells labels [why]"] is why  # updated in place
    move(labels, (0.2, 0.2))  # the background: what is shown stays, nothing is computed
    assert not widget.hover.busy and widget.hover.shown == 12
