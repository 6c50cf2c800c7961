"""The docks' states build their jobs without Qt: the settings checked, the model's own values kept."""
from __future__ import annotations

import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.state.denoise import DenoiseState
from napari_dlmicro.state.evaluate import parse_ious
from napari_dlmicro.state.segmentation import SegmentationState, layer_axes
from napari_dlmicro.state.training import TrainingState


def test_segmentation_state_builds_a_checked_job(trained_stardist):
    state = SegmentationState()
    state.choose_model(str(trained_stardist))
    state.axes = "YX"
    job = state.build_job(np.zeros((64, 64)), layer_scale=(0.5, 0.25))
    assert job.scale == {"Y": 0.5, "X": 0.25} and job.tile == 1024 and job.settings == {}
    state.model_settings.set("prob_thresh", 0.7)  # changed: passed on; the rest: the model's own
    assert state.build_job(np.zeros((64, 64))).settings == {"prob_thresh": 0.7}
    state.tile = -5
    with pytest.raises(UserError, match="Tile cannot be -5"):
        state.build_job(np.zeros((64, 64)))


def test_segmentation_state_needs_a_model_and_remembers_its_form(trained_stardist):
    state = SegmentationState()
    with pytest.raises(UserError, match="no model"):
        state.build_job(np.zeros((8, 8)))
    state.choose_model(str(trained_stardist))
    state.norm_low, state.tile = 2.5, 256
    state.remember()
    again = SegmentationState()
    saved = again.restore()
    assert (again.norm_low, again.tile, saved["model"]) == (2.5, 256, str(trained_stardist))


def test_layer_axes_follow_the_layer():
    assert layer_axes("ZYX", 3, False) == "ZYX"
    assert layer_axes("TZYX", 3, False) == "ZYX"  # remembered axes that do not fit: a guess
    assert layer_axes(None, 3, True) == "YXC"


def test_training_state_makes_the_job_arguments(tmp_path):
    state = TrainingState()
    with pytest.raises(UserError, match="training set"):
        state.job_args()
    state.folder, state.name = str(tmp_path), "mine"
    state.values.set("epochs", 2)
    args = state.job_args()
    assert args["out"].name == "mine" and args["settings"]["epochs"] == 2 and args["threads"] >= 1
    state.choose_kind("cellpose")
    assert state.values["lr"] == 1e-5  # each kind its own defaults
    state.choose_kind("stardist")
    assert state.values["epochs"] == 2  # and a kind's values come back when it is chosen again
    state.name = "../escape"
    with pytest.raises(UserError, match="cannot name a model"):
        state.job_args()


def test_denoise_state_keeps_shared_settings_across_kinds():
    state = DenoiseState()
    state.values.set("patch", 32)
    state.choose_kind("care")
    assert state.values["patch"] == 32 and "mask_fraction" not in state.values
    assert state.train_settings().kind == "care" and state.train_settings().learning_rate is None


def test_iou_thresholds_are_parsed_and_checked():
    assert parse_ious("0.5, 0.7 0.9") == (0.5, 0.7, 0.9)
    with pytest.raises(UserError, match="between 0 and 1"):
        parse_ious("0.5 2")
    with pytest.raises(UserError, match="numbers"):
        parse_ious("half")


def test_denoise_state_remembers_the_views_apply_averages(tmp_path, monkeypatch):
    import pytest

    from napari_dlmicro.core.errors import UserError
    from napari_dlmicro.state.denoise import DenoiseState

    monkeypatch.setenv("DLMICRO_CONFIG", str(tmp_path / "config"))
    assert DenoiseState().apply_tta()  # 8 views unless asked otherwise
    for views, averaged in (("1", False), ("8", True)):
        chosen = DenoiseState(views=views)
        chosen.remember()
        restored = DenoiseState()
        restored.restore()
        assert (restored.views, restored.apply_tta()) == (views, averaged)
    with pytest.raises(UserError, match="1, 8"):
        DenoiseState(views="3").apply_tta()
