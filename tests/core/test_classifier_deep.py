"""The deep classifier: a ResNet-18 on object crops, on the one training loop; saved, loaded, explained."""
import json

import numpy as np
import pytest
import torch
import torchvision

from napari_dlmicro.core.models.classifier import network
from napari_dlmicro.core.models.classifier.crops import CropGeometry, crop_batch, fixed_side
from napari_dlmicro.core.models.classifier.data import LabelledImage, classifier_data
from napari_dlmicro.core.models.classifier.folder import load_classifier
from napari_dlmicro.core.models.classifier.network import ObjectNet, imagenet_weights
from napari_dlmicro.core.models.classifier.objects import prepare
from napari_dlmicro.core.models.classifier.settings import ClassifierTraining
from napari_dlmicro.core.models.classifier.train import train_deep
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Metric, Metrics, Notice, Progress, run_to_end
from napari_dlmicro.core.training.result import StopReason

SMALL = ClassifierTraining(classifier="deep", epochs=3, minutes=None, crop=32, batch=8, lr=3e-3, threads=1)


def data_of(image, labels, truth):
    return classifier_data([LabelledImage("discs", image, labels, truth)], ["bright", "dim"])


def fake_imagenet():
    """A ResNet-18 state dict shaped as ImageNet's (random numbers: no download)."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict(), "started from test weights"


def test_crops_hold_the_image_and_the_object_mask(objects_two_kinds):
    image, labels, _ = objects_two_kinds
    obj = prepare(image, labels)
    crops = crop_batch(obj, np.arange(3), CropGeometry(32, 0.5))
    assert crops.shape == (3, 2, 32, 32) and crops.dtype == np.float32
    mask = crops[:, 1]
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert mask[:, 16, 16].all() and not mask[:, 0, 0].any()  # object in the middle, context around it
    assert crops[:, 0][mask > 0].mean() > crops[:, 0][mask == 0].mean()


def test_crops_of_one_side_keep_the_objects_sizes(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    obj = prepare(image, labels)
    side = fixed_side([obj], 0.5)
    assert 16 <= side <= 2 * 15  # the dim discs are up to 15 pixels across
    crops = crop_batch(obj, np.arange(len(obj.ids)), CropGeometry(32, 0.5, side))
    covered = crops[:, 1].mean(axis=(1, 2))
    bright = np.array([truth[int(i)] == "bright" for i in obj.ids])
    assert covered[bright].max() < covered[~bright].min()  # small discs cover less of their crop
    fitted = crop_batch(obj, np.arange(len(obj.ids)), CropGeometry(32, 0.5)).mean(axis=(2, 3))[:, 1]
    assert np.ptp(fitted) < np.ptp(covered)  # a box fitted to each object scales the size away


def test_imagenet_start_adapts_the_first_layer_to_the_channels():
    state, _ = fake_imagenet()
    for channels in (1, 3):
        net = ObjectNet(channels, 2)
        net.start_from(state)
        w = net.resnet.conv1.weight.detach()
        assert w.shape == (64, channels + 1, 7, 7) and torch.count_nonzero(w[:, -1]) == 0
        if channels == 3:
            assert torch.equal(w[:, :3], state["conv1.weight"])
        assert torch.equal(net.resnet.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_imagenet_weights_come_from_the_cache_or_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(url, path):
        raise OSError("no network")

    monkeypatch.setattr(network, "_download", offline)
    state, how = imagenet_weights()
    assert state is None and "scratch" in how and str(tmp_path / "checkpoints") in how
    (tmp_path / "checkpoints").mkdir()
    torch.save(fake_imagenet()[0], tmp_path / "checkpoints" / "resnet18-f37072fd.pth")
    state, how = imagenet_weights()
    assert state is not None and "conv1.weight" in state and "ImageNet" in how


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_two_kinds):
    """One deep classifier trained briefly on the discs (from stand-in ImageNet weights) and saved, with its events."""
    image, labels, truth = make_two_kinds()
    events = []
    folder = tmp_path_factory.mktemp("deep") / "deep"
    result = run_to_end(train_deep(data_of(image, labels, truth), SMALL, save_to=folder, weights=fake_imagenet),
                        events.append)
    return image, labels, result, folder, events


def test_deep_classifier_trains_validates_saves_and_loads(trained):
    image, labels, result, folder, events = trained
    rows = [e.values for e in events if isinstance(e, Metrics) and Metric.ACCURACY in e.values]
    assert rows and all(Metric.VAL_LOSS in r for r in rows)
    assert any(isinstance(e, Metrics) and Metric.STEP_LOSS in e.values for e in events)
    assert any(isinstance(e, Progress) for e in events)
    assert any(isinstance(e, Notice) and "test weights" in e.message for e in events)
    model = result.model
    assert result.stopped is StopReason.BUDGET and model.assessment is not None
    assert model.assessment.n == 4 and model.assessment.confusion.shape == (2, 2)  # 2 of each class (20 %) held out
    config = json.loads((folder / "config.json").read_text())
    assert config["classifier"] == "deep" and config["pretrained"] == "imagenet" and config["history"]
    assert config["assessment"]["confusion"] == model.assessment.confusion.tolist()
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "weights.safetensors"]
    loaded = load_classifier(folder)
    np.testing.assert_allclose(loaded.predict(image, labels).probabilities, model.predict(image, labels).probabilities,
                               atol=1e-5)


def test_stop_keeps_the_best_weights_so_far(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    token = CancelToken()
    seen = []

    def on_event(ev):
        seen.append(ev)
        if isinstance(ev, Metrics) and Metric.ACCURACY in ev.values:
            token.stop()

    settings = ClassifierTraining(classifier="deep", epochs=50, minutes=None, crop=32, batch=8, pretrained=False,
                                  threads=1)
    result = run_to_end(train_deep(data_of(image, labels, truth), settings, token), on_event)
    assert result.stopped is StopReason.STOPPED and result.steps < 50 * 2
    assert result.model.assessment is not None  # the kept weights are scored on the held-out objects


def test_grad_cam_lies_over_the_object_in_image_pixels(trained):
    image, labels, result, _, _ = trained
    cam = result.model.grad_cam(image, labels, 3)
    ys, xs = cam.region
    assert cam.data.shape == (ys.stop - ys.start, xs.stop - xs.start)
    assert ys.start >= 0 and ys.stop <= labels.shape[0] and xs.start >= 0 and xs.stop <= labels.shape[1]
    assert (labels[ys, xs] == 3).any() and cam.data.min() >= 0.0 and cam.data.max() <= 1.0
    assert cam.class_name == result.model.predict(image, labels).names[2]
    assert result.model.grad_cam(image, labels, 3, class_name="dim").class_name == "dim"


def test_offline_training_from_scratch_says_so(objects_two_kinds):
    image, labels, truth = objects_two_kinds
    settings = ClassifierTraining(classifier="deep", epochs=1, minutes=None, crop=32, batch=8, threads=1)
    events = []
    result = run_to_end(train_deep(data_of(image, labels, truth), settings), events.append)  # the tests' offline source
    assert any(isinstance(e, Notice) and "scratch" in e.message and e.level.value == "warning" for e in events)
    assert result.model.meta["pretrained"] == "none"


@pytest.mark.parametrize("cancel_at", [1, 3])
def test_cancel_ends_the_run_and_keeps_what_was_reached(objects_two_kinds, cancel_at):
    image, labels, truth = objects_two_kinds
    token = CancelToken()
    count = {"n": 0}

    def on_event(ev):
        count["n"] += 1
        if count["n"] == cancel_at:
            token.cancel()

    settings = ClassifierTraining(classifier="deep", epochs=20, minutes=None, crop=32, batch=8, pretrained=False,
                                  threads=1)
    try:
        result = run_to_end(train_deep(data_of(image, labels, truth), settings, token), on_event)
    except Exception as exc:  # cancelled while cropping: before training, nothing to keep
        assert type(exc).__name__ == "Cancelled"
    else:
        assert result.stopped is StopReason.CANCELLED
