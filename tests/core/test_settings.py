"""Declared settings: values are converted and range-checked, with messages that name the setting."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.settings import Setting, check_values, from_field


def test_values_are_converted_and_checked():
    tile = Setting("tile", "Tile", 1024, int, 0, 16384, 128)
    assert tile.check("512") == 512 and tile.check(256.0) == 256
    with pytest.raises(UserError, match="Tile cannot be -5.*0 to 16384"):
        tile.check(-5)
    with pytest.raises(UserError, match="whole number"):
        tile.check("2.5")
    with pytest.raises(UserError, match="needs a value"):
        tile.check(None)
    assert Setting("lr", "Rate", None, float, 1e-6, 1.0, optional=True).check("none") is None
    with pytest.raises(UserError, match="a number"):
        Setting("x", "X", 0.0, float).check("inf")


def test_choices_and_sets_of_choices():
    mode = Setting("channels", "Channels", "independent", str, choices=("independent", "joint"))
    assert mode.check("joint") == "joint"
    with pytest.raises(UserError, match="one of independent, joint"):
        mode.check("both")
    aug = Setting("augment", "Augmentation", (), str, choices=("flips", "rot90"), many=True)
    assert aug.check("rot90, flips") == ("flips", "rot90") and aug.check("none") == ()
    with pytest.raises(UserError, match="warp"):
        aug.check("flips,warp")


def test_flags_and_unknown_names():
    assert Setting("prob_thresh", "P").flag == "--prob-thresh"
    assert Setting("batch", "B", cli="--batch-size").flag == "--batch-size"
    with pytest.raises(UserError, match="unknown stardist setting bogus"):
        check_values([Setting("patch", "Patch", 64, int)], {"bogus": 1}, "stardist setting")


def test_a_setting_takes_its_default_and_type_from_the_dataclass():
    @dataclass(frozen=True)
    class Training:
        minutes: float | None = 5.0
        patch: int = 128
        augment: tuple[str, ...] = ("flips",)

    minutes, patch, augment = (from_field(Training, n, n.title()) for n in ("minutes", "patch", "augment"))
    assert (minutes.default, minutes.type, minutes.optional) == (5.0, float, True)
    assert (patch.default, patch.type, patch.optional) == (128, int, False)
    assert augment.many and augment.default == ("flips",)
