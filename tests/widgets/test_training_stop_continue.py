"""The Training dock's Stop and Continue buttons in a real viewer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dlmicro.core.data.training_sets import add_pair
from napari_dlmicro.core.models import loader
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.core.runtime.events import Metrics


@pytest.fixture
def training_set(nuclei, tmp_path):
    """Three 128x128 crops of the nuclei sample (one is held out for validation)."""
    img, gt = nuclei
    folder = tmp_path / "set"
    for k, (y, x) in enumerate(((0, 0), (0, 128), (128, 0))):
        add_pair(folder, img[y:y + 128, x:x + 128], gt[y:y + 128, x:x + 128], f"crop{k}")
    return folder


@pytest.fixture
def docks(make_napari_viewer, training_set):
    from napari_dlmicro.widgets.segmentation import SegmentationWidget
    from napari_dlmicro.widgets.training import TrainingWidget

    viewer = make_napari_viewer()
    train, seg = TrainingWidget(viewer), SegmentationWidget(viewer)
    train.set_folder(str(training_set))
    train.name_edit.setText("stopped")
    train.minutes.setValue(0.0)
    train.patch.setValue(64)
    train.batch.setValue(2)
    train.val_every.setValue(4)  # validate (one Metrics row with train_loss) every 4 steps
    events: list = []
    on_event = train._on_event
    train._on_event = lambda ev: (events.append(ev), on_event(ev))  # start() wires self._on_event
    return viewer, train, seg, events


def _validations(events) -> list[Metrics]:
    return [e for e in events if isinstance(e, Metrics) and e.step > 0 and "train_loss" in e.values]


def test_stop_keeps_a_usable_model_and_continue_trains_it_further(docks, qtbot, monkeypatch):
    _, train, seg, events = docks
    train.epochs.setValue(200)  # 800 steps: far more than the test waits for
    assert not train.continue_button.isEnabled() and not train.stop_button.isEnabled()
    train.train_button.click()
    handle = train.handle
    assert handle is not None and train.stop_button.isEnabled() and not train.train_button.isEnabled()
    qtbot.waitUntil(lambda: len(_validations(events)) >= 2, timeout=40_000)
    train.stop_button.click()
    assert "stopping" in train.status.text()
    qtbot.waitUntil(lambda: handle.finished, timeout=30_000)

    result = train.result
    assert result is not None and result.stopped_early
    assert result.history[-1]["step"] < 800
    folder = store_dir() / "stopped"
    assert result.folder == folder and train.last_model == str(folder)
    assert "saved 'stopped'" in train.status.text()
    model = loader.load_segmenter(folder)
    saved = {k: v.clone() for k, v in model.net.state_dict().items()}
    assert any(m.name == "stopped" and m.kind == "stardist" for m in list_models())
    assert seg.model_combo.findText("stopped") >= 0  # listed in the segmentation dock at once
    assert train.init_combo.findText("stopped") >= 0
    assert train.continue_button.isEnabled() and train.train_button.isEnabled()
    assert not train.stop_button.isEnabled()
    best_val_loss = result.best["val_loss"]

    loaded = []

    def spy(ref, device=None):
        loaded.append((str(ref), loader_load(ref, device)))
        return loaded[-1][1]

    loader_load = loader.load_segmenter
    monkeypatch.setattr(loader, "load_segmenter", spy)
    events.clear()
    train.epochs.setValue(2)  # a short continuation that runs to the end
    train.continue_button.click()
    handle = train.handle
    assert not train.continue_button.isEnabled()
    qtbot.waitUntil(lambda: handle.finished, timeout=40_000)

    assert [ref for ref, _ in loaded] == [str(folder)]
    start = loaded[0][1].net.state_dict()
    assert all(torch.equal(start[k], saved[k]) for k in saved)  # it started from the stopped model's weights
    again = train.result
    assert again is not None and not again.stopped_early and again.folder == folder
    # the first validation, before any step, scores the stopped model: its best validation loss again
    assert again.history[0]["step"] == 0
    assert again.history[0]["val_loss"] == pytest.approx(best_val_loss, rel=1e-3)
    assert again.history[-1]["step"] == 8
    assert isinstance(loader_load(folder), type(model)) and train.continue_button.isEnabled()
    assert np.isfinite(again.history[-1]["val_loss"])
