"""CARE refuses pairs it cannot learn from with one clear message each, before anything is written."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.models.restoration.care import check_pairs
from napari_dlmicro.core.models.restoration.network import build_model
from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
from napari_dlmicro.core.runtime.events import run_to_end

FAST = dict(kind="care", patch=16, batch_size=2, filters=8, steps_per_epoch=2, epochs=1, device="cpu")
RNG = np.random.default_rng(0)


def noise(*shape: int) -> np.ndarray:
    return RNG.random(shape).astype(np.float32)


def train(images, targets, **settings):
    return run_to_end(train_restoration(images, targets, TrainSettings(**{**FAST, **settings})))


def test_pairs_of_different_sizes_name_both():
    with pytest.raises(UserError, match=r"the input is 64x64 \(YX\) but its target is 64x60"):
        train([noise(64, 64)], [noise(64, 60)])


@pytest.mark.parametrize("target, expected", [
    ((64, 64), "must be 128x128"),  # the input's own size
    ((128, 64), "must be 128x128"),  # only one axis grown
    ((96, 96), "must be 128x128"),  # 1.5x
])
def test_upsampling_pairs_not_the_factor_apart(target, expected):
    with pytest.raises(UserError, match=rf"its target is {target[0]}x{target[1]}, not 2x larger") as err:
        train([noise(64, 64)], [noise(*target)], upsample=2)
    assert expected in err.value.remedy


def test_upsampling_stacks_name_both_ways_to_grow():
    with pytest.raises(UserError) as err:
        train([noise(8, 32, 32)], [noise(12, 32, 32)], upsample=2, axes="ZYX")
    assert "8x32x32 (ZYX)" in str(err.value)
    assert "8x64x64 (in-plane) or 16x32x32 (along Z)" in err.value.remedy


def test_pairs_that_grow_along_different_axes():
    with pytest.raises(UserError, match="upsampled along Z but the pairs before it along YX"):
        check_pairs([noise(8, 32, 32), noise(8, 32, 32)], [noise(8, 64, 64), noise(16, 32, 32)], "ZYX", 2)


def test_target_with_another_number_of_channels():
    with pytest.raises(UserError, match="the input has 2 channels but its target has 3"):
        train([noise(2, 32, 32)], [noise(3, 32, 32)], axes="CYX", channels="joint")
    with pytest.raises(UserError, match=r"the input has 2 channels .* but its target has none"):
        train([noise(2, 32, 32)], [noise(32, 32)], axes="CYX", channels="joint")


def test_upsampling_along_z_needs_enough_planes():
    with pytest.raises(UserError, match="has 2 plane.*too few to upsample along Z"):
        train([noise(2, 32, 32)], [noise(4, 32, 32)], upsample=2, axes="ZYX")
    model = build_model("care", 3, 1, 2, 8, {"normalization": {"input_mode": "per_image"}}, factors=(2, 1, 1))
    with pytest.raises(UserError, match="has 3 plane.*too few to upsample along Z"):
        denoise(noise(3, 32, 32), model, axes="ZYX")


def test_constant_target_is_refused():
    with pytest.raises(UserError, match="target .* is constant"):
        train([noise(32, 32)], [np.full((32, 32), 3.0, np.float32)])


def test_unsupported_factor_in_python_too():
    with pytest.raises(UserError, match="factor of 3 is not supported"):
        check_pairs([noise(16, 16)], [noise(48, 48)], "YX", 3)


def test_bad_pairs_on_the_command_line_write_nothing(tmp_path, capsys):
    (tmp_path / "low").mkdir()
    (tmp_path / "high").mkdir()
    low, high = noise(32, 32), noise(48, 48)
    tifffile.imwrite(tmp_path / "low" / "a.tif", low)
    tifffile.imwrite(tmp_path / "high" / "a.tif", high)
    rc = main(["train", "care", "--images", str(tmp_path / "low"), "--targets", str(tmp_path / "high"),
               "-o", str(tmp_path / "model"), "--upsample", "2", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "a.tif: the input is 32x32 (YX) but its target is 48x48, not 2x larger" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model").exists()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "low" / "a.tif"), low)  # the inputs untouched
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "high" / "a.tif"), high)
