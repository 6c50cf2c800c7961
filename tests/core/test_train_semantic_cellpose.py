"""Semantic U-Net training, and Cellpose-SAM fine-tuning (slow: a 1.2 GB network on the CPU)."""
import numpy as np
import pytest

from napari_dlmicro.core.data.training_sets import Pair
from napari_dlmicro.core.jobs.train import train_job
from napari_dlmicro.core.runtime.events import run_to_end


def test_semantic_unet_learns_classes(nuclei, tmp_path):
    from napari_dlmicro.core.models.semantic.network import load_semantic

    img, gt = nuclei
    classes = (gt > 0).astype(np.uint8)  # background / nucleus
    pair = Pair("n", img[:192, :192], classes[:192, :192])
    settings = {"epochs": 2, "patch": 64, "lr": 3e-3, "val_fraction": 0.3, "depth": 2, "filters": 8}
    result = run_to_end(train_job("semantic", [pair], settings, out=tmp_path / "sem"))
    assert result.history and result.history[-1]["accuracy"] > 0.8
    model = load_semantic(tmp_path / "sem")
    pred = model.predict(((img[192:256, :64] - img.min()) / np.ptp(img)).astype(np.float32)[..., None])
    assert pred.shape == (64, 64) and set(np.unique(pred)) <= {0, 1}


def test_cellpose_cost_is_stated():
    from napari_dlmicro.core.models.cellpose.train import cpu_cost_message

    assert "min" in cpu_cost_message(4, 10) and "GPU" in cpu_cost_message(4, 10)


@pytest.mark.slow
def test_cellpose_finetune_stops_in_time_and_saves(tmp_path):
    pytest.importorskip("cellpose")
    import torch
    from cellpose.vit import CPSAM

    torch.manual_seed(0)
    weights = tmp_path / "random_cpsam.pt"
    torch.save(CPSAM().state_dict(), weights)
    lab = np.zeros((128, 128), np.uint16)
    for k in range(8):
        lab[8 + 14 * k: 18 + 14 * k, 20:32] = k + 1
    img = (lab > 0).astype(np.float32) + 0.1
    pairs = [Pair("a", img, lab), Pair("b", img[:, ::-1].copy(), lab[:, ::-1].copy())]
    settings = {"minutes": 0.05, "batch": 1, "lr": 1e-5, "val_fraction": 0.5}
    result = run_to_end(train_job("cellpose", pairs, settings, out=tmp_path / "cp", init=str(weights), device="cpu"))
    # a 3-second budget ends the first (minute-long) CPU step from inside the network, and the weights are saved
    assert (tmp_path / "cp" / "cellpose_weights.pt").is_file() and result.stopped == "budget" and result.steps == 0
    weights.unlink()
