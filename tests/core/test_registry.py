"""The kind registry: one declaration per kind, so the command line and the docks cannot disagree."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_dlmicro.cli import build_parser, main
from napari_dlmicro.cli.train import settings_of
from napari_dlmicro.core.models.registry import KINDS, Task, TrainsOn, get_kind
from napari_dlmicro.state.denoise import DenoiseState
from napari_dlmicro.state.training import TrainingState


def _cli_settings(kind: str, *flags: str):
    data = {TrainsOn.TARGETS: ["--targets", "t"], TrainsOn.CLASSES: ["--masks", "m", "--classes", "c"]}.get(
        get_kind(kind).trains_on, [])
    args = build_parser().parse_args(["train", kind, "--images", "x", *data, "-o", "y", *flags])
    return get_kind(kind).training_settings(settings_of(get_kind(kind), args))


def _dock_settings(kind: str):
    if get_kind(kind).task is Task.RESTORE:
        state = DenoiseState()
        state.choose_kind(kind)
        return get_kind(kind).training_settings(state.values.checked())
    state = TrainingState()
    state.choose_kind(kind)
    return get_kind(kind).training_settings(state.values.checked())


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_trains_with_the_same_defaults_from_the_cli_and_the_dock(kind):
    assert _cli_settings(kind) == _dock_settings(kind)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_default_lies_in_its_declared_range(kind):
    for s in get_kind(kind).train_settings + get_kind(kind).predict_settings:
        assert s.check(s.default) == s.default, s.name


def test_batch_size_16_trains_stardist_with_16(nuclei, tmp_path):
    assert _cli_settings("stardist", "--batch-size", "16").batch == 16
    img, gt = nuclei
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    for k in range(2):
        tifffile.imwrite(tmp_path / "img" / f"n{k}.tif", img[k * 128:(k + 1) * 128, :128])
        tifffile.imwrite(tmp_path / "gt" / f"n{k}.tif", gt[k * 128:(k + 1) * 128, :128].astype(np.uint16))
    rc = main(["train", "stardist", "--images", str(tmp_path / "img"), "--masks", str(tmp_path / "gt"),
               "-o", str(tmp_path / "m"), "--epochs", "1", "--validate-every", "2", "--patch", "64",
               "--batch-size", "16", "--val-fraction", "0.5", "--device", "cpu"])
    assert rc == 0
    assert json.loads((tmp_path / "m" / "config.json").read_text())["training"]["batch"] == 16


def test_cellpose_fine_tunes_at_one_rate_from_the_cli_and_the_dock():
    assert _cli_settings("cellpose").lr == _dock_settings("cellpose").lr == 1e-5


def test_a_setting_out_of_range_is_refused_with_its_range(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "stardist", "--images", "x", "-o", "y", "--patch", "-5"])
    err = capsys.readouterr().err
    assert "Patch size cannot be -5" in err and "16 to 1024" in err


def test_a_budget_in_epochs_switches_the_minutes_off():
    s = _cli_settings("n2v", "--epochs", "3")
    assert s.epochs == 3 and s.minutes is None
