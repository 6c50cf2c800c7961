"""Objects at the image border: models trained here seed them up to the edge; StarDist's own skip two grid pixels."""
import json

import numpy as np
import torch

from napari_dlmicro.core.data.tiling import Tile
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.stardist.segmenter import BORDER, _tile_candidates


def test_border_grid_pixels_seed_objects_only_when_asked():
    prob = np.full((8, 8), 0.9, np.float32)
    dist = np.full((8, 8, 4), 3.0, np.float32)
    whole = Tile((slice(0, 16), slice(0, 16)), (slice(0, 16), slice(0, 16)))
    skipping = _tile_candidates(prob, dist, whole, (2, 2), (8, 8), 0.5, (16, 16), border=BORDER)
    assert len(skipping.points) == 4 * 4
    assert skipping.points.min() == 2 * BORDER
    everything = _tile_candidates(prob, dist, whole, (2, 2), (8, 8), 0.5, (16, 16), border=0)
    assert len(everything.points) == 8 * 8
    assert everything.points.min() == 0 and everything.points.max() == 14


def test_trained_models_seed_up_to_the_border_and_keep_it_when_saved(trained_stardist, tmp_path):
    from napari_dlmicro.core.models.stardist.settings import StarDistTraining
    from napari_dlmicro.core.models.stardist.train import train_stardist
    from napari_dlmicro.core.runtime.events import run_to_end

    model = get_segmenter(trained_stardist, torch.device("cpu"))
    x = np.random.default_rng(0).random((64, 64), np.float32)
    y = np.zeros((64, 64), np.int32)
    y[10:20, 10:20] = 1
    result = run_to_end(train_stardist([x], [y], settings=StarDistTraining(steps=1, patch=32, depth=2),
                                       init=model, save_to=tmp_path / "continued"))
    assert result.model.seed_border == 0
    config = json.loads((tmp_path / "continued" / "config.json").read_text())
    assert config["seed_border"] == 0
    assert get_segmenter(tmp_path / "continued", torch.device("cpu")).seed_border == 0


def test_models_saved_without_the_setting_keep_stardists_border(trained_stardist_without):
    assert trained_stardist_without("seed_border").seed_border == BORDER
