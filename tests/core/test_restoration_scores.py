"""Restoration scores: PSNR as is and scale-invariant, inputs of super-resolution, and ``evaluate`` on float images."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.restoration import (
    affine_fit,
    compare,
    psnr,
    psnr_scale_invariant,
    quality_text,
    upscaled,
)
from napari_dlmicro.core.jobs.evaluate import RestorationEvaluation, evaluate_files, is_restoration

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def truth():
    t = RNG.random((64, 64))
    return (t + np.roll(t, 1, 0) + np.roll(t, 1, 1)) * 50


def test_scale_invariant_psnr_forgives_brightness_and_offset_only(truth):
    restored = truth + RNG.normal(0, 2, truth.shape)
    off = 0.8 * restored + 15
    assert psnr_scale_invariant(truth, off) == pytest.approx(psnr_scale_invariant(truth, restored), abs=0.02)
    assert psnr(truth, off) < psnr(truth, restored) - 3
    assert psnr_scale_invariant(truth, restored) >= psnr(truth, restored)
    a, b = affine_fit(truth, 2 * truth - 3)
    assert (a, b) == pytest.approx((0.5, 1.5))
    with pytest.raises(UserError, match="constant"):
        psnr_scale_invariant(np.ones((8, 8)), truth[:8, :8])


def test_a_smaller_input_is_scored_after_interpolation(truth):
    low = truth.reshape(32, 2, 32, 2).mean((1, 3))
    scores = compare(truth, low, truth + 1)
    assert set(scores["input"]) == {"psnr", "psnr_si", "ssim"}
    assert scores["output"]["psnr_si"] > scores["input"]["psnr_si"]
    assert upscaled(low, (64, 64)).shape == (64, 64)
    text = quality_text(scores)
    assert text.count("scale-invariant") == 2 and text.startswith("input: PSNR")
    with pytest.raises(UserError, match=r"\(30, 30\) cannot be compared with one of \(64, 64\)"):
        upscaled(low[:30, :30], (64, 64))


def test_float_images_are_restorations_and_labels_are_not():
    assert is_restoration(np.array([[0.5, 1.0]], np.float32))
    assert not is_restoration(np.array([[0.0, 3.0]], np.float32))  # labels written as floats
    assert not is_restoration(np.array([[1, 2]], np.uint16))


def test_evaluate_scores_float_images_by_psnr(truth, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    for name, gain in (("a", 1.0), ("b", 0.9)):
        tifffile.imwrite(tmp_path / "pred" / f"{name}_denoised.tif",
                         (gain * truth + RNG.normal(0, 1, truth.shape)).astype(np.float32))
        tifffile.imwrite(tmp_path / "gt" / f"{name}.tif", truth.astype(np.float32))
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt")]) == 0
    out = capsys.readouterr().out
    assert "2 restored file(s) matched" in out and "PSNR scale-inv." in out and "mean" in out
    result = evaluate_files(tmp_path / "pred", tmp_path / "gt")
    assert result["kind"] == "restoration" and result["n_files"] == 2
    b = result["files"]["b_denoised.tif"]
    assert b["psnr_si"] > b["psnr"] + 3  # 10 % too dark: only the scale-invariant score forgives it
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mean"]["ssim"] > 0.9
    assert isinstance(RestorationEvaluation({"x": {"psnr": 1.0, "psnr_si": 2.0, "ssim": 0.5}}).table(), str)


def test_evaluate_refuses_mixed_sets_and_other_sizes(truth, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    tifffile.imwrite(tmp_path / "pred" / "a.tif", truth.astype(np.float32))
    tifffile.imwrite(tmp_path / "gt" / "a.tif", truth.astype(np.float32))
    tifffile.imwrite(tmp_path / "pred" / "b.tif", np.ones((64, 64), np.uint16))
    tifffile.imwrite(tmp_path / "gt" / "b.tif", np.ones((64, 64), np.uint16))
    assert main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "gt")]) == 2
    assert "b.tif holds labels but a.tif is a float image" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "small.tif", truth[:32].astype(np.float32))
    assert main(["evaluate", str(tmp_path / "small.tif"), str(tmp_path / "gt" / "a.tif")]) == 2
    assert "(32, 64) but its ground truth" in capsys.readouterr().err
