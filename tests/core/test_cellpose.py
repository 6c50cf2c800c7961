"""Cellpose-SAM through our segmenter, with random weights the tests build themselves."""
from __future__ import annotations

import os
import ssl
import urllib.error

import numpy as np
import pytest
import torch

from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.models.cellpose.segmenter import CellposeSegmenter, load_cellpose, next_after_oom
from napari_dlmicro.core.models.cellpose.tiling import cpu_cost_estimate, network_work
from napari_dlmicro.core.models.cellpose.weights import pretrained_location
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Notice, Progress, run_to_end

pytest.importorskip("cellpose")


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """A full Cellpose-SAM state dict with random weights (1.2 GB: cellpose always builds ViT-L)."""
    from cellpose.vit import CPSAM

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cellpose") / "random_cpsam.pt"
    torch.save(CPSAM().state_dict(), path)
    yield str(path)
    path.unlink(missing_ok=True)  # pytest keeps old temp folders; this one is big


@pytest.fixture(scope="session")
def segmenter(random_weights) -> CellposeSegmenter:
    return load_cellpose(random_weights, torch.device("cpu"))


def blobs(shape: tuple[int, ...]) -> np.ndarray:
    """A few bright discs, already scaled to 0..1 like the segmentation job does."""
    grids = np.indices(shape[-2:], dtype=np.float32)
    image = np.zeros(shape[-2:], np.float32)
    for cy, cx in [(0.3, 0.3), (0.6, 0.7), (0.7, 0.25)]:
        r2 = (grids[0] - cy * shape[-2]) ** 2 + (grids[1] - cx * shape[-1]) ** 2
        image += np.exp(-r2 / (2 * 8.0**2))
    return np.broadcast_to(image, shape).astype(np.float32)


def count_forwards(net: torch.nn.Module) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    calls: list[int] = []
    handle = net.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    return calls, handle


def fake_forward(x: torch.Tensor):
    """Stands in for the ViT when only cellpose's plumbing is under test."""
    return torch.zeros(x.shape[0], 3, x.shape[-2], x.shape[-1], dtype=x.dtype), torch.zeros(x.shape[0], 256)


# --------------------------------------------------------------------------- the real network


def test_segment_returns_labels_and_progress(segmenter):
    events: list = []
    calls, handle = count_forwards(segmenter.model.net)
    try:
        labels = run_to_end(segmenter.segment(blobs((128, 128)), {}, NEVER), events.append)
    finally:
        handle.remove()
    assert labels.shape == (128, 128)
    assert labels.dtype == np.int32
    progress = [e for e in events if isinstance(e, Progress)]
    assert len(progress) >= 3  # start, one per batch, done
    assert progress[-1].done == progress[-1].total
    assert len(calls) == network_work((128, 128))[0] == 1


def test_segmentation_job_takes_2d_images_for_cellpose(segmenter):
    from napari_dlmicro.core.jobs.segment import segment

    result = segment(blobs((96, 96)), segmenter, axes="YX")
    assert result.labels.shape == (96, 96)


def test_cancel_stops_between_tile_batches(segmenter):
    token = CancelToken()
    image = blobs((128, 512))  # three tiles of 256 px, one per batch on the CPU
    assert network_work(image.shape)[0] == 3

    def on_event(event):
        if isinstance(event, Progress) and event.done >= 1:
            token.cancel()

    calls, handle = count_forwards(segmenter.model.net)
    try:
        with pytest.raises(Cancelled):
            run_to_end(segmenter.segment(image, {}, token), on_event)
    finally:
        handle.remove()
    assert 1 <= len(calls) < 3


def test_out_of_memory_retries_smaller_batch_then_cpu(segmenter, monkeypatch):
    net = segmenter.model.net
    real_forward = net.forward
    failures = {"left": 2}

    def forward_running_out(x):
        if failures["left"]:
            failures["left"] -= 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(x)

    monkeypatch.setattr(net, "forward", forward_running_out)
    monkeypatch.setattr(segmenter, "batch_size", 2)
    # Pretend the model sits on a GPU; the tensors stay on the CPU.
    monkeypatch.setattr(segmenter.model, "device", torch.device("cuda"))
    events: list = []
    labels = run_to_end(segmenter.segment(blobs((128, 128)), {}, NEVER), events.append)
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 2
    assert "1 tile" in notices[0].message
    assert "CPU" in notices[1].message
    assert segmenter.device.type == "cpu"
    assert segmenter.batch_size == 1
    assert labels.shape == (128, 128)


# --------------------------------------------------------------------------- cellpose's plumbing, fake network


@pytest.mark.parametrize(
    "shape, settings",
    [
        ((256, 256), {}),
        ((300, 600), {}),
        ((300, 200), {"diameter": 15}),
        ((3, 100, 120), {"stitch_threshold": 0.3}),
        ((3, 40, 300), {}),
        ((2, 40, 60), {"anisotropy": 2.0}),
    ],
)
def test_predicted_batches_match_cellpose(segmenter, monkeypatch, shape, settings):
    monkeypatch.setattr(segmenter.model.net, "forward", fake_forward)
    calls, handle = count_forwards(segmenter.model.net)
    try:
        labels = run_to_end(segmenter.segment(np.zeros(shape, np.float32), settings, NEVER))
    finally:
        handle.remove()
    assert labels.shape == shape and labels.dtype == np.int32
    assert len(calls) == network_work(shape, settings, segmenter.batch_size)[0]


def test_channels_are_passed_through(segmenter, monkeypatch):
    seen = []
    monkeypatch.setattr(segmenter.model.net, "forward", lambda x: (seen.append(x.shape[1]), fake_forward(x))[1])
    for channels in (1, 2, 3):
        run_to_end(segmenter.segment(np.zeros((64, 64, channels), np.float32), {}, NEVER))
    assert seen == [1, 2, 3]
    with pytest.raises(UserError, match="at most 3 channels"):
        run_to_end(segmenter.segment(np.zeros((4, 64, 64, 5), np.float32), {}, NEVER))


# --------------------------------------------------------------------------- weights files


class RunsCodeWhenUnpickled:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_file_needing_unpickling_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pt"
    torch.save({"W2": torch.zeros(1), "extra": RunsCodeWhenUnpickled(str(marker))}, path)
    with pytest.raises(UserError, match="unpickling"):
        load_cellpose(path, torch.device("cpu"))
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: full unpickling runs it
    assert marker.exists()


def test_incomplete_and_foreign_files_are_refused(tmp_path):
    partial = tmp_path / "partial.pt"
    torch.save({"W2": torch.zeros(1), "out.weight": torch.zeros(1)}, partial)
    with pytest.raises(UserError, match="not a complete Cellpose-SAM model"):
        load_cellpose(partial, torch.device("cpu"))

    cp3 = tmp_path / "cp3.pt"
    torch.save({"downsample.0.weight": torch.zeros(1)}, cp3)
    with pytest.raises(UserError, match="not a Cellpose 4 model"):
        load_cellpose(cp3, torch.device("cpu"))

    text = tmp_path / "notes.pt"
    text.write_text("not weights")
    with pytest.raises(UserError, match="could not be read as PyTorch weights"):
        load_cellpose(text, torch.device("cpu"))

    with pytest.raises(UserError, match="neither a Cellpose-SAM model name nor an existing file"):
        load_cellpose("cyto2_not_here", torch.device("cpu"))
    with pytest.raises(UserError, match="is a folder"):
        load_cellpose(tmp_path, torch.device("cpu"))


def test_offline_download_names_url_and_folder(tmp_path, monkeypatch):
    import cellpose.models
    import cellpose.utils

    def offline(url, dst, progress=True):
        ssl._create_default_https_context = ssl._create_unverified_context  # as cellpose does
        raise urllib.error.URLError("Temporary failure in name resolution")

    before = ssl._create_default_https_context
    monkeypatch.setattr(cellpose.models, "MODEL_DIR", tmp_path)
    monkeypatch.setattr(cellpose.utils, "download_url_to_file", offline)
    with pytest.raises(UserError) as err:
        load_cellpose("cpsam", torch.device("cpu"))
    url, target = pretrained_location("cpsam")
    assert url.endswith("/cpsam") and url in str(err.value)
    assert str(tmp_path) in str(err.value) and target.parent == tmp_path
    assert ssl._create_default_https_context is before


# --------------------------------------------------------------------------- policy and estimates


def test_next_after_oom():
    assert next_after_oom(8, "cuda", in_network=True) == (4, False)
    assert next_after_oom(1, "cuda", in_network=True) == (1, True)
    assert next_after_oom(8, "cuda", in_network=False) == (1, True)  # the dynamics ran out
    assert next_after_oom(1, "cpu", in_network=True) is None


def test_cpu_cost_estimate_scales():
    one = cpu_cost_estimate((512, 512), threads=2)
    assert one == pytest.approx(80.0, rel=0.01)
    assert cpu_cost_estimate((512, 512), threads=4) == pytest.approx(one / 2)
    assert cpu_cost_estimate((1024, 1024), threads=2) > 2.5 * one  # 25 tiles against 9
    stitched = cpu_cost_estimate((10, 512, 512), {"stitch_threshold": 0.5}, threads=2)
    assert stitched == pytest.approx(10 * one, rel=0.01)
    assert cpu_cost_estimate((10, 512, 512), threads=2) > 3 * stitched  # thin ZY/ZX planes pad to 256
    assert cpu_cost_estimate((512, 512), {"diameter": 15}, threads=2) > 2.5 * one  # image doubled


def test_model_info(segmenter):
    info = segmenter.info
    assert info.kind == "cellpose" and info.spatial_ndim == 3
    assert segmenter.default_settings()["flow_threshold"] == 0.4
    assert {"diameter", "cellprob_threshold", "min_size"} <= set(segmenter.default_settings())
    assert segmenter.model.net.dtype == torch.float32  # no emulated bf16 on the CPU
