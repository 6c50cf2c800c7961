"""The Classification dock's state and jobs without Qt: clicks, classes, settings, refits, carry-over, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.classes import make_classes
from napari_dlmicro.core.models.loader import kind_of
from napari_dlmicro.core.runtime.events import run_to_end
from napari_dlmicro.state.classification import ClassificationState, check_layers, time_axis
from napari_dlmicro.state.classify_jobs import apply_job, changed_region, measure_job, refresh_job, save_job, why_job

CLASSES = make_classes(["small", "big"])


def two_kinds(shape=(96, 96), seed=0):
    """Small bright squares and big dim squares on a noisy background: the image, labels and each id's kind."""
    rng = np.random.default_rng(seed)
    image = rng.normal(10.0, 2.0, shape).astype(np.float32)
    labels = np.zeros(shape, np.uint16)
    kinds = {}
    label = 0
    for y in range(4, shape[0] - 14, 16):
        for x in range(4, shape[1] - 14, 16):
            label += 1
            big = label % 2 == 0
            side = 11 if big else 5
            labels[y:y + side, x:x + side] = label
            image[y:y + side, x:x + side] += 30.0 if big else 80.0
            kinds[label] = "big" if big else "small"
    return image, labels, kinds


def test_a_click_labels_an_object_and_a_second_click_unlabels_it():
    state = ClassificationState()
    assert state.click(0) is None and state.table == {}  # the background labels nothing
    assert state.click(5) == "class 1"
    state.select(1)
    assert state.click(5) == "class 2" and state.table == {5: "class 2"}  # another class relabels it
    assert state.click(5) is None and state.table == {}  # its own class again: unlabelled
    with pytest.raises(UserError, match="there is no class 3"):
        state.select(2)


def test_clicks_stay_on_one_time_point():
    state = ClassificationState()
    state.click(3, frame=0)
    with pytest.raises(UserError, match="time point 0"):
        state.click(4, frame=1)
    state.clear_clicks()
    assert state.click(4, frame=1) == "class 1" and state.frame == 1
    assert time_axis("TYX", 3) and not time_axis("ZYX", 3) and time_axis(None, 4)


def test_classes_with_clicks_are_kept_and_renames_follow():
    state = ClassificationState()
    state.click(1)
    with pytest.raises(UserError, match="has 1 labelled object"):
        state.remove_class(0)
    state.rename_class(0, "mitotic")
    assert state.table == {1: "mitotic"} and state.class_names == ("mitotic", "class 2")
    state.select(state.add_class())
    assert state.class_names[-1] == "class 3" and state.current == 2
    state.remove_class(2)
    state.remove_class(1)
    state.clear_clicks()
    with pytest.raises(UserError, match="last class"):
        state.remove_class(0)


def test_training_needs_two_classes_each_with_an_example():
    state = ClassificationState()
    state.click(1)
    with pytest.raises(UserError, match="'class 2' has no labelled objects"):
        state.check_ready()
    assert state.ready() == "label at least one object of 'class 2'"
    state.remove_class(1)
    with pytest.raises(UserError, match="only one class"):
        state.check_ready()


def test_clicks_made_while_a_job_runs_are_replayed_on_its_carried_table():
    state = ClassificationState()
    state.click(1)
    snapshot = state.snapshot()
    state.select(1)
    state.click(2)  # while the job runs
    state.settle({10: snapshot[1]})  # the job carried object 1 over to the new object 10
    assert state.table == {10: "class 1", 2: "class 2"}


def test_each_classifier_shows_its_settings_and_shared_values_carry_over(tmp_path):
    state = ClassificationState()
    assert set(state.values.names()) == {"trees", "val_fraction", "seed"}
    state.values.set("seed", 7)
    state.choose_kind("deep")
    assert "crop" in state.values.names() and state.values["seed"] == 7
    state.values.set("epochs", 3)
    args = state.train_args()
    assert args["settings"]["minutes"] is None and args["settings"]["classifier"] == "deep"
    assert args["out"].name == "my-classifier" and args["threads"] >= 1
    assert state.fit_settings()["seed"] == 7  # the fast one's settings while the deep one is chosen
    state.values.set("crop", 8)
    with pytest.raises(UserError, match="Crop size"):
        state.train_args()
    state.name = "../escape"
    with pytest.raises(UserError, match="cannot name a model"):
        state.save_folder()


def test_classes_and_form_are_remembered():
    state = ClassificationState()
    state.rename_class(1, "dying")
    state.set_colour(1, "#123456")
    state.choose_kind("deep")
    state.suggest = 25
    state.remember()
    again = ClassificationState()
    again.restore()
    assert again.class_names == ("class 1", "dying") and again.classes[1].colour == "#123456"
    assert again.kind == "deep" and again.suggest == 25


def test_labels_that_do_not_match_the_image_are_refused():
    check_layers("img", (64, 64, 3), "lab", (64, 64), timed=False)  # channels last
    check_layers("img", (2, 64, 64), "lab", (64, 64), timed=False)  # channels first
    with pytest.raises(UserError, match=r"'lab' \(32x32\) does not match the image 'img' \(64x64\)"):
        check_layers("img", (64, 64), "lab", (32, 32), timed=False)


def test_a_refresh_measures_fits_and_classifies_every_object():
    image, labels, kinds = two_kinds()
    table = {1: "small", 3: "small", 2: "big", 4: "big"}
    r = run_to_end(refresh_job(None, image, labels, table, CLASSES, {"trees": 30, "seed": 0}))
    assert r.table is None and r.update is not None
    u = r.update
    truth = np.array([kinds[int(i)] for i in u.prediction.ids])
    assert (u.prediction.names == truth).mean() >= 0.9
    assert set(u.features.columns) >= {"index", "label", "class", "probability", "p_small", "p_big"}
    assert u.counts() == {"small": int((u.prediction.names == "small").sum()), "big": int((u.prediction.names ==
                                                                                           "big").sum())}
    assert u.class_map.shape == labels.shape and set(np.unique(u.class_map)) <= {0, 1, 2}
    # one class without examples: measured, not fitted
    r2 = run_to_end(refresh_job(r.measured, image, labels, {1: "small"}, CLASSES, {}))
    assert r2.update is None and r2.measured is r.measured


def test_changed_labels_carry_the_clicks_over_and_are_measured_again():
    image, labels, _ = two_kinds()
    measured = run_to_end(measure_job(image, labels))
    new = np.where(labels > 0, labels + 100, 0).astype(np.uint16)  # re-segmented: the same objects, new ids
    r = run_to_end(refresh_job(measured, image, new, {1: "small", 2: "big"}, CLASSES, {}))
    assert r.table == {101: "small", 102: "big"} and r.measured.matches(new)
    with pytest.raises(UserError, match="clicks were made on objects of shape"):
        run_to_end(refresh_job(measured, image[:32], new[:32], {1: "small"}, CLASSES, {}))


def test_only_the_changed_part_of_the_class_map_is_redrawn():
    old = np.zeros((8, 8), np.uint8)
    new = old.copy()
    new[2:4, 5] = 1
    assert changed_region(old, new) == (slice(2, 4), slice(5, 6))
    assert changed_region(new, new) is None and changed_region(None, new) == (slice(0, 8), slice(0, 8))


def test_a_saved_classifier_explains_classifies_again_and_refuses_other_channels(tmp_path):
    image, labels, _ = two_kinds()
    r = run_to_end(refresh_job(None, image, labels, {1: "small", 3: "small", 2: "big", 4: "big"}, CLASSES,
                               {"trees": 20}))
    why = run_to_end(why_job(r.update.model, r.measured, 2))
    assert why.top and why.data.shape == tuple(s.stop - s.start for s in why.region)
    with pytest.raises(UserError, match="not an object"):
        run_to_end(why_job(r.update.model, r.measured, 999))
    folder = run_to_end(save_job(r.update.model, tmp_path / "sizes"))
    assert kind_of(str(folder)) == "classifier"
    again = run_to_end(apply_job(folder, image, labels, timed=False))
    assert np.array_equal(again.prediction.names, r.update.prediction.names)
    stacked = np.stack([image, image], axis=-1)
    with pytest.raises(UserError, match="1-channel images"):
        run_to_end(apply_job(folder, stacked, labels, timed=False))
    # a time series: every time point classified, one class map for them all
    series = run_to_end(apply_job(folder, np.stack([image, image]), np.stack([labels, labels]), timed=True))
    assert series.class_map.shape == (2, *labels.shape) and set(series.predictions) == {0, 1}
    assert "frame" in series.table()
