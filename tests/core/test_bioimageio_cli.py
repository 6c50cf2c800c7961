"""The command line end to end: ``export MODEL -o OUT.zip --check`` writes a package that bioimage.io's own test
passes, and ``segment``/``denoise -m OUT.zip`` then give the original model's output."""
from __future__ import annotations

import numpy as np
import tifffile

from napari_dlmicro.cli import main

CREDITS = ["--author", "Ada Tester", "--licence", "MIT"]


def test_cli_export_checked_then_segment_with_the_package(trained_stardist, right_half, tmp_path, capsys):
    img = right_half[0][:192, :192]
    tifffile.imwrite(tmp_path / "img.tif", img)
    tifffile.imwrite(tmp_path / "test.tif", img[:128, :128])
    out = tmp_path / "stardist.zip"
    code = main(["export", str(trained_stardist), "-o", str(out), *CREDITS, "--test-image",
                 str(tmp_path / "test.tif"), "--check"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert str(out) in printed.out and "bioimageio test: passed" in printed.out
    for name, model in (("original", trained_stardist), ("package", out)):
        assert main(["segment", str(tmp_path / "img.tif"), "-m", str(model), "-o", str(tmp_path / name),
                     "--engine", "torch"]) == 0, capsys.readouterr().err
    original = tifffile.imread(tmp_path / "original" / "img_labels.tif")
    imported = tifffile.imread(tmp_path / "package" / "img_labels.tif")
    assert original.max() > 5 and np.array_equal(original, imported)


def test_cli_export_then_denoise_with_the_package(trained_n2v, noisy_crop, tmp_path, capsys):
    noisy = np.pad(noisy_crop[0], 40, mode="reflect")
    tifffile.imwrite(tmp_path / "noisy.tif", noisy)
    tifffile.imwrite(tmp_path / "test.tif", noisy_crop[0])
    out = tmp_path / "n2v.zip"
    assert main(["export", str(trained_n2v), "-o", str(out), *CREDITS, "--test-image",
                 str(tmp_path / "test.tif")]) == 0, capsys.readouterr().err
    for name, model in (("original", trained_n2v), ("package", out)):
        assert main(["denoise", str(tmp_path / "noisy.tif"), "-m", str(model), "-o", str(tmp_path / name),
                     "--engine", "torch"]) == 0, capsys.readouterr().err
    original = tifffile.imread(tmp_path / "original" / "noisy_denoised.tif")
    imported = tifffile.imread(tmp_path / "package" / "noisy_denoised.tif")
    np.testing.assert_allclose(imported, original, rtol=1e-3, atol=1e-3)
