"""The segmentation job on real objects, and every kind of bad input it must explain."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from stardist.matching import matching

from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.jobs.segment import (
    SegmentJob,
    _compact_dtype,
    segment,
    segment_job,
)
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import (
    Notice,
    Preview,
    Progress,
    run_to_end,
)


@pytest.fixture
def model(trained_stardist):
    return get_segmenter(trained_stardist, torch.device("cpu"))


def test_trained_model_finds_the_nuclei(model, right_half):
    img, gt = right_half
    result = segment(img, model, axes="YX")
    stats = matching(gt, result.labels, thresh=0.5)
    assert stats.f1 >= 0.3, stats  # a few hundred CPU steps; the untrained net finds nothing
    assert result.labels.dtype == np.uint16
    assert len(result.table["label"]) == result.n_objects


def test_tiled_and_untiled_agree(model, right_half):
    img, _ = right_half
    whole = segment(img, model, axes="YX", tile=None)
    tiled = segment(img, model, axes="YX", tile=128)
    assert whole.n_objects > 10
    assert matching(whole.labels, tiled.labels, thresh=0.5).f1 >= 0.99


def test_tiles_stream_as_previews_in_place(model, right_half):
    img, _ = right_half
    model._cache = None  # earlier tests left this image's network output cached
    events = []
    result = run_to_end(segment_job(SegmentJob(img, model, axes="YX", tile=128)), events.append)
    previews = [e for e in events if isinstance(e, Preview)]
    progress = [e for e in events if isinstance(e, Progress)]
    assert len(previews) > 1 and progress[-1].fraction == 1.0
    canvas = np.zeros(img.shape, np.int64)
    for p in previews:
        canvas[p.region] = np.maximum(canvas[p.region], p.data)
    assert matching(result.labels, canvas, thresh=0.5).f1 > 0.5


def test_preview_region_segments_only_the_view(model, right_half):
    img, _ = right_half
    stack = np.stack([img, img[::-1]])
    result = segment(stack, model, axes="TYX", region={"T": 1, "Y": slice(100, 300), "X": slice(0, 200)})
    assert result.labels.shape == (1, 200, 200)
    assert result.placement == (slice(1, 2), slice(100, 300), slice(0, 200))
    assert result.n_objects > 0


def test_time_series_runs_frame_by_frame(model, right_half):
    img, _ = right_half
    result = segment(np.stack([img[:128, :128]] * 2), model, axes="TYX")
    assert result.labels.shape == (2, 128, 128)
    assert set(result.table) >= {"frame", "label"}


def test_2d_model_on_a_z_stack_goes_plane_by_plane(model, right_half):
    img, _ = right_half
    events = []
    result = run_to_end(segment_job(SegmentJob(np.stack([img[:96, :96]] * 3), model, axes="ZYX")), events.append)
    assert result.labels.shape == (3, 96, 96)
    assert any(isinstance(e, Notice) and "plane by plane" in e.message for e in events)


def test_image_smaller_than_a_tile_works(model, right_half):
    img, _ = right_half
    result = segment(img[:40, :52], model, axes="YX", tile=1024)
    assert result.labels.shape == (40, 52)


def test_nan_pixels_are_background_with_a_warning(model, right_half):
    img, _ = right_half
    img = img.astype(np.float32)
    img[:10, :10] = np.nan
    img[20, 20] = np.inf
    events = []
    result = run_to_end(segment_job(SegmentJob(img, model, axes="YX")), events.append)
    assert result.n_objects > 0
    assert any(isinstance(e, Notice) and "NaN" in e.message for e in events)


@pytest.mark.parametrize(
    "image, axes, words",
    [
        (np.full((64, 64), 7.0), "YX", "constant"),
        (np.zeros((0, 64)), "YX", "empty"),
        (np.full((64, 64), np.nan), "YX", "NaN"),
        (np.random.rand(4, 4), "YX", "only 4x4"),
        (np.random.rand(64, 64, 3), "YXC", "RGB"),
        (np.random.rand(64, 64), "ZYX", "name 3 dimensions"),
    ],
)
def test_bad_input_is_explained(model, image, axes, words):
    with pytest.raises(UserError, match=words):
        segment(image, model, axes=axes)


def test_rgb_with_a_channel_choice_works(model, right_half):
    img, _ = right_half
    rgb = np.stack([img[:96, :96]] * 3, axis=-1)
    assert segment(rgb, model, axes="YXC", channel=1).labels.shape == (96, 96)


def test_cancel_stops_at_the_next_tile(model, right_half):
    img, _ = right_half
    token = CancelToken()
    seen = []

    def on_event(ev):
        seen.append(ev)
        if isinstance(ev, Progress):
            token.cancel()

    with pytest.raises(Cancelled):
        run_to_end(segment_job(SegmentJob(img, model, axes="YX", tile=128), token), on_event)
    assert sum(isinstance(e, Progress) for e in seen) <= 2


def test_gpu_out_of_memory_retries_with_smaller_tiles(model, right_half, monkeypatch):
    img, _ = right_half
    reference = segment(img, model, axes="YX", tile=None)
    original = model.forward
    calls = {"n": 0}

    def flaky(x, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return original(x, *args)

    monkeypatch.setattr(model, "forward", flaky)
    model._cache = None
    events = []
    result = run_to_end(segment_job(SegmentJob(img, model, axes="YX", tile=None)), events.append)
    assert any(isinstance(e, Notice) and "smaller" in e.message for e in events)
    assert matching(reference.labels, result.labels, thresh=0.5).f1 >= 0.99


def test_many_objects_switch_to_uint32():
    labels = np.zeros((300, 300), np.uint32)
    labels.flat[:70000] = np.arange(1, 70001)
    assert _compact_dtype(labels).dtype == np.uint32
    assert _compact_dtype(labels % 100).dtype == np.uint16
