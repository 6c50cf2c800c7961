"""Bad input to a classifier: each a clear message naming what is wrong, and nothing the user made is touched."""
import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.classify import classify, train_classifier_job
from napari_dlmicro.core.models.classifier.classes import make_classes
from napari_dlmicro.core.models.classifier.fast import fit_fast
from napari_dlmicro.core.models.classifier.features import object_features
from napari_dlmicro.core.runtime.events import run_to_end

FAST = {"classifier": "fast", "trees": 10}
DEEP = {"classifier": "deep", "epochs": 1, "crop": 32, "batch": 4, "pretrained": False}


def train(image, labels, table, classes, settings=FAST, **kwargs):
    return run_to_end(train_classifier_job(image, labels, table, classes, settings, threads=1, **kwargs))


@pytest.mark.parametrize("settings", [FAST, DEEP])
def test_one_class_only(objects_two_kinds, settings):
    image, labels, truth = objects_two_kinds
    with pytest.raises(UserError, match="only 1 class .bright. is defined"):
        train(image, labels, {1: "bright", 3: "bright"}, ["bright"], settings)


@pytest.mark.parametrize("settings", [FAST, DEEP])
def test_a_class_without_examples(objects_two_kinds, settings):
    image, labels, truth = objects_two_kinds
    with pytest.raises(UserError, match="class 'dim' has no labelled objects"):
        train(image, labels, {1: "bright", 3: "bright"}, ["bright", "dim"], settings)


def test_a_class_name_that_is_not_a_class(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    with pytest.raises(UserError, match="class 'round'"):
        train(image, labels, {1: "bright", 2: "round"}, ["bright", "dim"])


@pytest.mark.parametrize("settings", [FAST, DEEP])
def test_a_label_that_is_not_in_the_mask(objects_two_kinds, settings):
    image, labels, truth = objects_two_kinds
    table = {1: "bright", 2: "dim", 999: "dim"}
    with pytest.raises(UserError, match="label 999 .* is not an object of its mask"):
        train(image, labels, table, ["bright", "dim"], settings)
    assert table == {1: "bright", 2: "dim", 999: "dim"}  # the clicks are left as they were


def test_image_and_mask_of_different_shapes(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    with pytest.raises(UserError, match=r"image of shape \(128, 100\) and mask of shape \(128, 128\) differ"):
        train(image[:, :100], labels, {1: "bright", 2: "dim"}, ["bright", "dim"])
    model = fit_fast(object_features(image, labels), {1: "bright", 2: "dim", 3: "bright", 4: "dim"},
                     make_classes(["bright", "dim"]))
    with pytest.raises(UserError, match="differ"):
        classify(image, labels[:64], model)


@pytest.mark.parametrize("settings", [FAST, DEEP])
def test_objects_cut_to_nothing_by_the_image_border(objects_two_kinds, settings):
    image, labels, truth = objects_two_kinds
    labels = labels.copy()
    labels[0, :2] = 90  # a 2-pixel sliver on the border, the only 'edge' example
    table = {1: "bright", 2: "dim", 3: "bright", 4: "dim", 90: "edge"}
    with pytest.raises(UserError, match="class 'edge' has no usable example.*cut to a few pixels by the image border"):
        train(image, labels, table, ["bright", "dim", "edge"], settings)
    # with other examples of its class the sliver is left out, with a note
    labels[0, 60:62] = 91
    table = {1: "bright", 2: "dim", 3: "bright", 4: "dim", 91: "bright"}
    events = []
    run_to_end(train_classifier_job(image, labels, table, ["bright", "dim"], settings, threads=1), events.append)
    assert any("left out" in getattr(e, "message", "") for e in events)


@pytest.mark.parametrize("settings", [FAST, DEEP])
def test_a_stored_classifier_on_an_image_with_other_channels(make_two_kinds, tmp_path, settings):
    image, labels, truth = make_two_kinds()
    table = {k: truth[k] for k in range(1, 9)}
    train(image, labels, table, ["bright", "dim"], settings, out=tmp_path / "grey")
    rgb, _, _ = make_two_kinds(channels=3)
    with pytest.raises(UserError, match="trained on 1-channel images; the image has 3 channel"):
        classify(rgb, labels, tmp_path / "grey")


def test_a_deep_classifier_takes_2d_objects():
    labels = np.zeros((4, 32, 32), np.int32)
    labels[1:3, 2:8, 2:8], labels[1:3, 12:20, 12:20] = 1, 2
    with pytest.raises(UserError, match="deep classifier crops 2D objects"):
        train(labels.astype(np.float32), labels, {1: "a", 2: "b"}, ["a", "b"], DEEP)


def test_settings_out_of_range_name_the_setting(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    with pytest.raises(UserError, match="Classifier cannot be forest"):
        train(image, labels, {1: "bright", 2: "dim"}, ["bright", "dim"], {"classifier": "forest"})
