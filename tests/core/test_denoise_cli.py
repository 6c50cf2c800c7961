"""The ``denoise`` and ``train n2v|care`` commands, end to end on small files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.cli import main


@pytest.fixture()
def folders(tmp_path):
    noisy, clean = noisy_nuclei_arrays()
    (tmp_path / "raw").mkdir()
    (tmp_path / "gt").mkdir()
    for i, (r, c) in enumerate([(0, 0), (64, 64)]):
        tifffile.imwrite(tmp_path / "raw" / f"im{i}.tif", noisy[r:r + 64, c:c + 64])
        tifffile.imwrite(tmp_path / "gt" / f"im{i}.tif", clean[r:r + 64, c:c + 64])
    return tmp_path


def test_train_n2v_then_denoise_with_model(folders, capsys):
    assert main(["train", "n2v", "--images", str(folders / "raw"), "-o", str(folders / "m"),
                 "--epochs", "1", "--patch", "32", "--batch-size", "2", "--device", "cpu", "--lr", "2e-3"]) == 0
    config = json.loads((folders / "m" / "config.json").read_text())
    assert config["training"]["learning_rate"] == 2e-3
    assert main(["denoise", str(folders / "raw"), "-m", str(folders / "m"), "-o", str(folders / "out")]) == 0
    out = tifffile.imread(folders / "out" / "im0_denoised.tif")
    assert out.dtype == np.float32 and out.shape == (64, 64)


def test_denoise_n2v_trains_on_inputs_and_saves(folders):
    assert main(["denoise", str(folders / "raw" / "im1.tif"), "--n2v", "--minutes", "0.05", "-o", str(folders / "o"),
                 "--save-model", str(folders / "saved")]) == 0
    assert (folders / "o" / "im1_denoised.tif").is_file()
    assert (folders / "saved" / "weights.safetensors").is_file()


def test_train_care_pairs(folders):
    assert main(["train", "care", "--images", str(folders / "raw"), "--targets", str(folders / "gt"),
                 "-o", str(folders / "care"), "--minutes", "0.05", "--patch", "32", "--val-fraction", "0.5"]) == 0


def test_bad_inputs_exit_2_with_one_line(folders, capsys):
    (folders / "gt" / "im1.tif").unlink()
    assert main(["train", "care", "--images", str(folders / "raw"), "--targets", str(folders / "gt"),
                 "-o", str(folders / "care"), "--epochs", "1"]) == 2
    assert "no target of the same file name" in capsys.readouterr().err
    tifffile.imwrite(folders / "flat.tif", np.ones((64, 64), np.float32))
    assert main(["denoise", str(folders / "flat.tif"), "--n2v", "--epochs", "1", "-o", str(folders / "o2")]) == 2
    assert "constant" in capsys.readouterr().err
    assert not (folders / "o2").exists() or not any((folders / "o2").iterdir())
    assert main(["denoise", str(folders / "raw"), "-m", str(folders / "nothing"), "-o", str(folders / "o3")]) == 2


def test_views_choose_the_test_time_views_and_refuse_other_counts(folders, monkeypatch, capsys):
    from napari_dlmicro.core.jobs import denoise as jobs

    assert main(["train", "n2v", "--images", str(folders / "raw"), "-o", str(folders / "m"),
                 "--epochs", "1", "--patch", "32", "--batch-size", "2", "--device", "cpu"]) == 0
    seen = []
    real = jobs.denoise_job

    def spy(model, image, axes=None, channels=None, tile=None, tta=False, **kw):
        seen.append(tta)
        return (yield from real(model, image, axes, channels, tile, tta, **kw))

    monkeypatch.setattr(jobs, "denoise_job", spy)
    raw = str(folders / "raw" / "im0.tif")
    for views, tta in ((None, True), ("1", False), ("8", True)):
        seen.clear()
        args = ["denoise", raw, "-m", str(folders / "m"), "-o", str(folders / "out")]
        args += ["--views", views] if views else []
        assert main(args) == 0
        assert seen == [tta]
    with pytest.raises(SystemExit):
        main(["denoise", raw, "-m", str(folders / "m"), "-o", str(folders / "out"), "--views", "4"])
    assert "1, 8" in capsys.readouterr().err
