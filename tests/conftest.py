"""Shared fixtures: the bundled nuclei sample and a StarDist model the tests train themselves."""
from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path, monkeypatch):
    """Keep every test away from the user's real settings, store and cache."""
    monkeypatch.setenv("DLMICRO_MODELS", str(tmp_path / "store"))
    monkeypatch.setenv("DLMICRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DLMICRO_CONFIG", str(tmp_path / "config"))


@pytest.fixture(scope="session")
def nuclei():
    """The DSB2018 nuclei image (512x512) and its ground-truth labels."""
    from stardist.data import test_image_nuclei_2d

    img, gt = test_image_nuclei_2d(return_mask=True)
    return img, gt


@pytest.fixture(scope="session")
def trained_stardist(nuclei, tmp_path_factory):
    """A small StarDist trained briefly on the left half of the nuclei image, saved as our folder."""
    from napari_dlmicro.core.data.normalize import normalize_percentile
    from napari_dlmicro.core.models.stardist.folder import save_stardist
    from napari_dlmicro.core.models.stardist.settings import StarDistTraining
    from napari_dlmicro.core.models.stardist.train import train_stardist_2d
    from napari_dlmicro.core.runtime.events import run_to_end

    img, gt = nuclei
    half = img.shape[1] // 2
    x = normalize_percentile(img)
    steps = int(os.environ.get("DLMICRO_TEST_TRAIN_STEPS", "300"))
    settings = StarDistTraining(depth=2, filters=16, steps=steps, lr=3e-3, patch=128, batch=4)
    model = run_to_end(train_stardist_2d([x[:, :half]], [gt[:, :half]], settings, name="test-stardist"))
    folder = tmp_path_factory.mktemp("models") / "test-stardist"
    save_stardist(model, folder, description="trained by the test suite")
    return folder


@pytest.fixture
def trained_stardist_without(trained_stardist, tmp_path):
    """Load the suite's StarDist re-saved without one config key, as a version before that key saved it."""
    import json

    import torch

    from napari_dlmicro.core.models.cache import get_segmenter
    from napari_dlmicro.core.models.stardist.folder import save_stardist

    def load_without(key: str):
        folder = save_stardist(get_segmenter(trained_stardist, torch.device("cpu")), tmp_path / f"without-{key}")
        config = json.loads((folder / "config.json").read_text())
        config.pop(key)
        (folder / "config.json").write_text(json.dumps(config))
        return get_segmenter(folder, torch.device("cpu"))

    return load_without


@pytest.fixture
def right_half(nuclei):
    """The held-out half of the nuclei sample: image and ground truth."""
    img, gt = nuclei
    half = img.shape[1] // 2
    return np.ascontiguousarray(img[:, half:]), np.ascontiguousarray(gt[:, half:])
