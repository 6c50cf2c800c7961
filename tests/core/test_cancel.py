"""Cancel ends every kind of job inside its unit of work, and keeps what was finished.

No timing in the asserts: each test counts the work done when the job ended
(views of a tile, layers of a network, files of a folder) and checks it ended
before its unit could have.
"""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.jobs.segment import SegmentJob, segment_job
from napari_dlmicro.core.jobs.segment_files import segment_files_job
from napari_dlmicro.core.models.loader import load_segmenter
from napari_dlmicro.core.runtime.cancel import CancelToken, cancellable_forward
from napari_dlmicro.core.runtime.events import Preview, run_to_end


@pytest.fixture
def model(trained_stardist):
    return load_segmenter(trained_stardist, torch.device("cpu"))


def test_a_cancel_stops_the_view_loop_of_one_tile(model, right_half, monkeypatch):
    token = CancelToken()
    views = []
    once = model._forward_once

    def counted(x, t=None):
        views.append(1)
        token.cancel()  # the user cancels while the first of eight views runs
        return once(x, t)

    monkeypatch.setattr(model, "_forward_once", counted)
    with pytest.raises(Cancelled):
        run_to_end(segment_job(SegmentJob(right_half[0], model, settings={"views": 8}, tile=None), token))
    assert len(views) == 1  # not the eight a tile takes


def test_a_cancel_stops_a_network_between_its_layers():
    net = torch.nn.Sequential(*[torch.nn.Conv2d(1, 1, 3, padding=1) for _ in range(10)])
    token = CancelToken()
    ran = []
    def after(i):
        def hook(module, args, output):
            ran.append(i)
            if i == 2:
                token.cancel()  # the user cancels while the third layer runs

        return hook

    for i, layer in enumerate(net):
        layer.register_forward_hook(after(i))
    with pytest.raises(Cancelled), cancellable_forward(net, token):
        net(torch.zeros(1, 1, 16, 16))
    assert ran == [0, 1, 2]


def test_a_cancel_during_training_backward_ends_the_step():
    net = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(5)])
    token = CancelToken()
    net[2].register_full_backward_hook(lambda *_: token.cancel())
    with cancellable_forward(net, token):
        loss = net(torch.rand(2, 4)).sum()
        with pytest.raises(Cancelled):
            loss.backward()
    assert net[0].weight.grad is None  # the first layer's gradient was never reached


def test_a_cancelled_tiled_run_keeps_the_finished_tiles(model, right_half):
    token = CancelToken()
    kept = []
    job = segment_job(SegmentJob(right_half[0], model, settings={"views": 1}, tile=128), token)
    with pytest.raises(Cancelled):
        for ev in job:
            if isinstance(ev, Preview):
                kept.append(ev.region)
                token.cancel()
    assert len(kept) == 1  # one tile shown, then it stopped (the image has four)


def test_a_cancelled_folder_keeps_whole_files_and_no_partial_one(model, right_half, tmp_path):
    for k in range(3):
        tifffile.imwrite(tmp_path / f"im{k}.tif", right_half[0][:128, k * 64:k * 64 + 128])
    token = CancelToken()
    out = tmp_path / "out"
    job = segment_files_job(sorted(tmp_path.glob("im*.tif")), out, model, token, settings={"views": 1})
    with pytest.raises(Cancelled):
        for _ in job:
            if (out / "im0_labels.tif").exists():
                token.cancel()
    written = sorted(p.name for p in out.iterdir())
    assert written == ["im0_labels.tif", "im0_measurements.csv"]  # and no hidden partial file


def test_a_cancelled_denoise_folder_keeps_the_files_done(tmp_path):
    from napari_dlmicro.core.jobs.denoise import denoise_files_job
    from napari_dlmicro.core.models.restoration.network import build_model

    model = build_model("n2v", 2, 1, depth=1, filters=4, extra={"normalization": {
        "percentiles": [1.0, 99.8], "input_mode": "dataset", "input": {"low": [0.0], "high": [1.0]}}})
    rng = np.random.default_rng(0)
    for k in range(3):
        tifffile.imwrite(tmp_path / f"n{k}.tif", rng.random((64, 64), dtype=np.float32))
    token = CancelToken()
    out = tmp_path / "out"
    with pytest.raises(Cancelled):
        for _ in denoise_files_job(sorted(tmp_path.glob("n*.tif")), out, model, tile=32, token=token):
            if (out / "n0_denoised.tif").exists():
                token.cancel()
    assert sorted(p.name for p in out.iterdir()) == ["n0_denoised.tif"]
