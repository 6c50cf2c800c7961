"""Shared fixtures: the bundled nuclei sample and a StarDist model the tests train themselves."""
from __future__ import annotations

import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def _engines_dir(tmp_path_factory):
    """One folder of exported networks and engine measurements for the whole session (exports take seconds)."""
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(autouse=True)
def _engines_as_headless():
    """Each test starts as a headless process would: every engine allowed (a dock keeps OpenVINO out again)."""
    from napari_dlmicro.core.models.engines import choice

    choice._IN_NAPARI["yes"] = False


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path, monkeypatch, _engines_dir):
    """Keep every test away from the user's real settings, store and cache."""
    monkeypatch.setenv("DLMICRO_MODELS", str(tmp_path / "store"))
    monkeypatch.setenv("DLMICRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DLMICRO_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("DLMICRO_ENGINES", str(_engines_dir))


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


@pytest.fixture(scope="session")
def noisy_crop():
    """A 128x128 noisy crop of the nuclei sample and its clean version."""
    from napari_dlmicro._sample_noisy import noisy_nuclei_arrays

    noisy, clean = noisy_nuclei_arrays()
    return noisy[100:228, 100:228].copy(), clean[100:228, 100:228].copy()


@pytest.fixture(scope="session")
def trained_n2v(noisy_crop, tmp_path_factory):
    """A small Noise2Void (N2V2 layout) trained for a few epochs on the noisy crop, saved as our folder."""
    from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
    from napari_dlmicro.core.runtime.events import run_to_end

    settings = TrainSettings(kind="n2v", epochs=3, patch=32, batch_size=8, filters=16, steps_per_epoch=10,
                             learning_rate=2e-3, device="cpu", strategy="n2v2", n2v2_net=True)
    folder = tmp_path_factory.mktemp("models") / "test-n2v"
    run_to_end(train_restoration([noisy_crop[0]], None, settings, save_to=folder))
    return folder


@pytest.fixture(scope="session")
def trained_care(noisy_crop, tmp_path_factory):
    """A small CARE model trained for a few epochs from the noisy crop to the clean one."""
    from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
    from napari_dlmicro.core.runtime.events import run_to_end

    settings = TrainSettings(kind="care", epochs=3, patch=32, batch_size=8, filters=16, steps_per_epoch=10,
                             learning_rate=2e-3, device="cpu")
    folder = tmp_path_factory.mktemp("models") / "test-care"
    run_to_end(train_restoration([noisy_crop[0]], [noisy_crop[1]], settings, save_to=folder))
    return folder


@pytest.fixture(scope="session")
def trained_semantic(nuclei, tmp_path_factory):
    """A tiny background/nucleus U-Net trained for a few epochs on a corner of the nuclei image."""
    from napari_dlmicro.core.data.training_sets import Pair
    from napari_dlmicro.core.jobs.train import train_job
    from napari_dlmicro.core.runtime.events import run_to_end

    img, gt = nuclei
    classes = (gt > 0).astype(np.uint8)
    folder = tmp_path_factory.mktemp("models") / "test-semantic"
    settings = {"epochs": 4, "patch": 64, "lr": 1e-2, "val_fraction": 0.3, "depth": 2, "filters": 8}
    run_to_end(train_job("semantic", [Pair("n", img[:192, :192], classes[:192, :192])], settings, out=folder,
                         device="cpu"))
    return folder


@pytest.fixture(scope="session")
def blob_stardist_2d():
    """A 2D StarDist (ResNet backbone, 8 rays) wired by hand, and a 64x64 image with three Gaussian blobs it finds:
    every convolution passes the image through, the probability is a steep sigmoid of it, every ray 3 pixels."""
    import torch

    from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
    from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter

    config = StarDistNetConfig(ndim=2, n_rays=8, grid=(1, 1), backbone="resnet", resnet_blocks=1, resnet_filters=4,
                               conv_after=4)
    net = StarDistNet(config).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
                module.bias.zero_()
                k = module.weight.shape[2:]
                if module is not net.dist and module is not net.prob:
                    module.weight[0, 0, k[0] // 2, k[1] // 2] = 1.0
        for block in net.body:
            for conv in block.convs:
                conv.conv.weight.zero_()
        net.prob.weight[0, 0] = 20.0
        net.prob.bias.fill_(-10.0)
        net.dist.bias.fill_(3.0)
    model = StarDistSegmenter(net, name="blobs-2d", prob_thresh=0.5, nms_thresh=0.3, seed_border=0)
    y, x = np.mgrid[:64, :64].astype(np.float32)
    image = np.zeros((64, 64), np.float32)
    for cy, cx in ((16, 20), (40, 44), (18, 46)):
        image += np.exp(-(((y - cy) / 4.0) ** 2 + ((x - cx) / 4.0) ** 2))
    return model, image
