"""The Denoising dock's state offers CARE's upsampling factor and places an upsampled output over its input."""
from __future__ import annotations

import numpy as np
import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.denoise import Applied
from napari_dlmicro.core.models.restoration.network import build_model
from napari_dlmicro.state.denoise import DenoiseState, output_placement, placeholder, preview_placement, result_text


def test_care_offers_the_upsampling_factor_and_n2v_does_not():
    state = DenoiseState()
    assert "upsample" not in state.values
    state.choose_kind("care")
    assert state.values.specs["upsample"].choices == ("1", "2", "4")
    state.values.set("upsample", "2")  # as the form's combo box gives it
    assert state.job_args()["settings"]["upsample"] == 2 and state.train_settings().upsample == 2
    state.values.set("upsample", "3")
    with pytest.raises(UserError, match="Upsampling cannot be 3"):
        state.job_args()
    state.choose_kind("n2v")
    assert "upsample" not in state.values


def test_an_upsampled_output_sits_over_its_input_with_the_pixel_size_divided():
    x2 = build_model("care", 2, 1, 2, 8, factors=(2, 2))
    placed = output_placement(x2, (3, 48, 40), (5.0, 0.5, 0.5), (0.0, 10.0, 0.0), "TYX")
    assert placed.shape == (3, 96, 80) and placed.scale == (5.0, 0.25, 0.25)
    assert placed.translate == pytest.approx((0.0, 9.875, -0.125))
    assert placeholder(placed).shape == (3, 96, 80) and placeholder(placed).dtype == np.float32
    same = output_placement(build_model("care", 2, 1, 2, 8), (48, 40), (0.5, 0.5), (1.0, 2.0))
    assert (same.shape, same.scale, same.translate) == ((48, 40), (0.5, 0.5), (1.0, 2.0))


def test_a_preview_of_an_upsampling_model_covers_the_region_it_was_asked_for():
    asked = (slice(10, 20), slice(0, 16))
    assert preview_placement((0.5, 0.5), (1.0, 0.0), asked, asked) == ((0.5, 0.5), (6.0, 0.0))
    scale, translate = preview_placement((0.5, 0.5), (1.0, 0.0), asked, (slice(20, 40), slice(0, 32)))
    assert scale == (0.25, 0.25)
    # the finer preview starts where the coarse pixel 10 began: the same field of view
    assert translate == pytest.approx((1.0 + 10 * 0.5 - 0.125, -0.125))


def test_the_scores_are_worded_as_is_and_scale_invariant():
    q = {"psnr": 20.0, "psnr_si": 22.5, "ssim": 0.5}
    text = result_text(Applied(np.zeros((4, 4), np.float32), (0.0, 1.0), scores={"input": q, "output": q}))
    assert text.count("scale-invariant 22.50 dB") == 2
    assert result_text(Applied(np.zeros(1), (0.0, 1.0), score_error="the ground truth is 8x8")) == \
        "the ground truth is 8x8"
    assert result_text(Applied(np.zeros(1), (0.0, 1.0))) == ""
