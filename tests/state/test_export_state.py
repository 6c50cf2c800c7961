"""The export form's state without Qt: remembered credits, checked metadata, the package it writes; the engine
choice of the Segmentation and Denoising docks reaches their jobs and is remembered."""
from __future__ import annotations

import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.runtime.events import run_to_end
from napari_dlmicro.state.denoise import DenoiseState
from napari_dlmicro.state.export import ExportState, split_authors
from napari_dlmicro.state.segmentation import SegmentationState


def test_export_state_needs_a_model_a_file_and_good_citations(tmp_path):
    state = ExportState()
    with pytest.raises(UserError, match="no model"):
        state.target()
    state.for_model("stardist:2D_versatile_fluo", tmp_path)
    assert state.out == str(tmp_path / "stardist_2D_versatile_fluo.zip")
    state.out = str(tmp_path / "pkg")
    assert state.target() == tmp_path / "pkg.zip"
    state.citations = "a paper without a reference"
    with pytest.raises(UserError, match="DOI or URL"):
        state.meta()
    assert split_authors("Ada Tester; Grace Hopper\n\n Alan Turing ") == ("Ada Tester", "Grace Hopper", "Alan Turing")


def test_export_state_writes_the_package_and_remembers_the_credits(trained_n2v, tmp_path):
    state = ExportState()
    state.for_model(str(trained_n2v), tmp_path)
    state.authors, state.licence = "Ada Tester\nGrace Hopper", "MIT"
    state.citations = "Tester et al., A test model, 2026 | 10.1234/test.5678"
    exported = run_to_end(state.job())
    assert exported.path == tmp_path / f"{trained_n2v.name}.zip" and exported.path.is_file()
    again = ExportState()
    again.restore()
    assert (again.authors, again.licence) == ("Ada Tester\nGrace Hopper", "MIT")
    assert "10.1234/test.5678" in again.citations


def test_the_docks_engine_choice_reaches_the_job_and_is_remembered(trained_stardist):
    state = SegmentationState()
    state.choose_model(str(trained_stardist))
    state.engine = "onnxruntime"
    assert state.build_job(np.zeros((64, 64))).engine == "onnxruntime"
    state.remember()
    again = SegmentationState()
    again.restore()
    assert again.engine == "onnxruntime"
    state.engine = "tensorrt"
    with pytest.raises(UserError, match="Engine"):
        state.build_job(np.zeros((64, 64)))
    denoise = DenoiseState()
    denoise.engine = "openvino"
    denoise.remember()
    restored = DenoiseState()
    restored.restore()
    assert restored.apply_engine() == "openvino"
