"""What ``segment`` says about awkward inputs: a clear message or a correct result, never a traceback."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.segment import segment


def test_a_boolean_image_is_segmented(trained_stardist, right_half, tmp_path, capsys):
    img, gt = right_half
    tifffile.imwrite(tmp_path / "mask.tif", gt[:128, :128] > 0)
    rc = main(["segment", str(tmp_path / "mask.tif"), "-m", str(trained_stardist), "-o", str(tmp_path / "out"),
               "--views", "1", "--device", "cpu"])
    assert rc == 0 and (tmp_path / "out" / "mask_labels.tif").is_file()
    assert "objects" in capsys.readouterr().out


def test_an_output_that_is_a_file_is_refused(trained_stardist, right_half, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "a.tif", right_half[0][:64, :64])
    (tmp_path / "taken").write_text("not a folder")
    rc = main(["segment", str(tmp_path / "a.tif"), "-m", str(trained_stardist), "-o", str(tmp_path / "taken")])
    err = capsys.readouterr().err
    assert rc == 2 and "is a file, not a folder" in err and "Traceback" not in err


def test_a_negative_tile_is_refused_with_its_range(trained_stardist, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["segment", str(tmp_path / "a.tif"), "-m", str(trained_stardist), "-o", str(tmp_path), "--tile", "-5"])
    assert "Tile cannot be -5" in capsys.readouterr().err


def test_huge_float64_values_segment_like_the_same_image_scaled(trained_stardist, right_half):
    img = right_half[0][:128, :128].astype(np.float64)
    plain = segment(img, trained_stardist, settings={"views": 1}, measure=False).labels
    huge = segment(img * 1e300, trained_stardist, settings={"views": 1}, measure=False).labels
    assert plain.max() > 0 and np.mean(plain == huge) > 0.999  # the same up to the last bit of rounding


def test_planes_stored_as_samples_are_named_channels_with_a_way_out(trained_stardist, right_half, tmp_path, capsys):
    stack = np.stack([right_half[0][:64, :64]] * 4, -1)  # Y, X, 4: tifffile stores it as RGBA samples
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="rgb", extrasamples=["unspecified"])
    rc = main(["segment", str(tmp_path / "stack.tif"), "-m", str(trained_stardist), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "4 channels" in err and "--axes YXZ" in err
    with pytest.raises(UserError, match="4 channels"):
        segment(stack, trained_stardist, axes="YXC")
    assert segment(stack, trained_stardist, axes="YXZ", settings={"views": 1}, measure=False).labels.shape == (4, 64, 64)
