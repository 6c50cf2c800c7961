"""The Segmentation dock's Big images settings without Qt: cluster choice, output place, remembered values."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import lazy_from_array
from napari_dlmicro.state.blockwise import BlockwiseSettings
from napari_dlmicro.state.segmentation import SegmentationState


def test_every_setting_is_an_evented_field():
    settings = BlockwiseSettings()
    for name in ("workers", "scheduler", "block_size", "output_folder"):
        assert hasattr(getattr(settings.events, name), "connect")  # a dock binds to each


def test_local_workers_or_a_scheduler_address():
    assert BlockwiseSettings(workers=3).cluster().workers == 3
    assert BlockwiseSettings().cluster().workers is None  # chosen for the machine
    assert BlockwiseSettings(scheduler=" tcp://host:8786 ").cluster().scheduler == "tcp://host:8786"
    with pytest.raises(UserError, match="not a scheduler address"):
        BlockwiseSettings(scheduler="my cluster").cluster()
    with pytest.raises(UserError, match="not both"):
        BlockwiseSettings(workers=2, scheduler="tcp://host:8786").cluster()


def test_labels_go_next_to_the_store_or_into_the_chosen_folder(tmp_path):
    image = lazy_from_array(np.zeros((64, 64), np.uint8), "YX", name="plate_A1")
    image.path = tmp_path / "plate_A1.ome.zarr"
    assert BlockwiseSettings().output_for(image) == tmp_path / "plate_A1_labels.ome.zarr"
    assert BlockwiseSettings(output_folder=str(tmp_path / "out")).output_for(image) == \
        tmp_path / "out" / "plate_A1_labels.ome.zarr"
    image.path = None
    with pytest.raises(UserError, match="output folder"):
        BlockwiseSettings().output_for(image)


def test_a_job_is_built_from_the_dock_and_an_existing_output_needs_resume(tmp_path):
    state = SegmentationState(model="2D_versatile_fluo")
    state.blockwise.output_folder = str(tmp_path)
    image = lazy_from_array(np.zeros((64, 64), np.uint8), "YX", name="img")
    job = state.build_blockwise_job(image)
    assert job.output == tmp_path / "img_labels.ome.zarr" and job.measurements.name == "img_measurements.csv"
    assert job.tile == state.tile and job.block == state.blockwise.block_size
    Path(job.output).mkdir()
    with pytest.raises(UserError, match="Resume"):
        state.build_blockwise_job(image)
    assert state.build_blockwise_job(image, resume=True).resume
    state.blockwise.block_size = 16
    with pytest.raises(UserError, match="block size"):
        state.build_blockwise_job(image, resume=True)


def test_the_settings_come_back_next_session():
    state = SegmentationState(model="2D_versatile_fluo")
    state.blockwise.workers, state.blockwise.scheduler, state.blockwise.block_size = 4, "tcp://h:1", 2048
    state.remember()
    again = SegmentationState()
    again.restore()
    assert (again.blockwise.workers, again.blockwise.scheduler, again.blockwise.block_size) == (4, "tcp://h:1", 2048)


def test_the_docks_engine_and_trust_reach_the_blockwise_job(tmp_path):
    state = SegmentationState(model="2D_versatile_fluo", engine="onnxruntime")
    state.blockwise.output_folder = str(tmp_path)
    image = lazy_from_array(np.zeros((64, 64), np.uint8), "YX", name="img")
    job = state.build_blockwise_job(image, trust_code=True)
    assert job.engine == "onnxruntime" and job.trust_code
    assert not state.build_blockwise_job(image, resume=True).trust_code  # trusted for one start, never kept
