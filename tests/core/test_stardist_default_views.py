"""Models trained here segment with test-time views by default; other models with one view."""
import json

import numpy as np
import torch

from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.loader import load_segmenter
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.models.stardist.thresholds import optimize_thresholds, set_thresholds
from napari_dlmicro.core.models.stardist.train import train_stardist
from napari_dlmicro.core.runtime.events import run_to_end


def _square_pair():
    x = np.random.default_rng(0).random((64, 64), np.float32)
    y = np.zeros((64, 64), np.int32)
    y[10:20, 10:20] = 1
    y[40:52, 30:44] = 2
    return x, y


def test_a_trained_2d_model_saves_and_loads_its_views(tmp_path):
    x, y = _square_pair()
    settings = StarDistTraining(steps=1, patch=32, depth=2, views=4)
    result = run_to_end(train_stardist([x], [y], [x], [y], settings=settings, save_to=tmp_path / "m"))
    assert result.model.default_settings()["views"] == 4
    assert json.loads((tmp_path / "m" / "config.json").read_text())["views"] == 4
    assert get_segmenter(tmp_path / "m", torch.device("cpu")).default_settings()["views"] == 4
    assert StarDistTraining().views == 8


def test_thresholds_keep_the_views_and_are_tuned_with_them(trained_stardist, monkeypatch):
    from napari_dlmicro.core.models.stardist import thresholds as stardist_thresholds

    model = load_segmenter(trained_stardist)  # a copy of its own: thresholds change below
    assert model.default_settings()["views"] == 8  # the suite's model was trained here
    seen = []
    real = stardist_thresholds.candidates_of
    monkeypatch.setattr(stardist_thresholds, "candidates_of",
                        lambda m, ims, prob, token=None, views=1: seen.append(views) or real(m, ims, prob, views=views))
    x, y = _square_pair()
    optimize_thresholds(model, [x[..., None]], [y])
    assert seen == [8]
    set_thresholds(model, 0.6, 0.3)
    assert model.default_settings() == {"prob_thresh": 0.6, "nms_thresh": 0.3, "views": 8}


def test_models_saved_without_views_segment_with_one(trained_stardist_without):
    assert trained_stardist_without("views").default_settings()["views"] == 1
