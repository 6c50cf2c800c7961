"""CARE super-resolution: 2x/4x in-plane and along Z, tiled prediction, pixel sizes, and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from blockwise_helpers import write_ngff

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.restoration import psnr, quality_text, upscaled
from napari_dlmicro.core.io.ome_zarr import open_image
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.io.tiff_write import write_image
from napari_dlmicro.core.jobs.blockwise_denoise import BlockwiseDenoiseJob, blockwise_denoise_job
from napari_dlmicro.core.jobs.denoise import apply_job, denoise, growth, output_scale, output_translate
from napari_dlmicro.core.models.registry import get_kind
from napari_dlmicro.core.models.restoration.network import load_restoration
from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.events import Preview, run_to_end

FAST = dict(kind="care", patch=32, batch_size=4, filters=8, steps_per_epoch=10, device="cpu")


def shrink(image: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Each block of ``factors`` pixels averaged into one."""
    shape = [n for m, f in zip(image.shape, factors) for n in (m // f, f)]
    return image.reshape(shape).mean(axis=tuple(range(1, 2 * image.ndim, 2))).astype(np.float32)


@pytest.fixture(scope="module")
def pair():
    noisy, clean = noisy_nuclei_arrays()
    high = clean[:192, :192].copy()
    return shrink(noisy[:192, :192], (2, 2)), high


@pytest.fixture(scope="module")
def model_x2(pair, tmp_path_factory):
    low, high = pair
    folder = tmp_path_factory.mktemp("sr") / "care_x2"
    events = []
    # one thread: the thread tuner would change the summation order mid-run, and sixty steps are not enough
    # to make the run forget it (the score moved 23.2-24.8 dB between runs)
    settings = TrainSettings(epochs=6, upsample=2, learning_rate=2e-3, max_threads=1, **FAST)
    result = run_to_end(train_restoration([low], [high], settings, save_to=folder,
                                          preview=(0, (slice(0, 32), slice(16, 48)))), events.append)
    return result, folder, events


def test_x2_model_restores_at_twice_the_size(pair, model_x2):
    low, high = pair
    result, folder, events = model_x2
    model = load_restoration(folder)
    assert model.config["upsample"] == {"factors": [2, 2], "axes": "YX"}
    assert model.config["training"]["upsample"] == 2
    out = denoise(low, model)
    assert out.shape == high.shape and out.dtype == np.float32
    # the network starts from the cubic interpolation of its input; sixty steps already take it beyond
    assert psnr(high, out) > psnr(high, upscaled(low, high.shape)) + 0.5
    previews = [e for e in events if isinstance(e, Preview)]
    assert all(p.data.shape == (64, 64) and p.region == (slice(0, 64), slice(32, 96)) for p in previews)


def test_tile_seams_do_not_show(pair, model_x2):
    low, _ = pair
    model = model_x2[0].model
    whole = denoise(low, model, tile=None)
    span = float(whole.max() - whole.min())
    for tile in (64, 48):
        tiled = denoise(low, model, tile=tile)
        assert np.abs(tiled - whole).max() < 0.005 * span, tile


def test_time_points_and_nan_pixels_upsample_too(pair, model_x2):
    low, _ = pair
    model = model_x2[0].model
    stack = np.stack([low, low[::-1].copy()])
    assert denoise(stack, model, axes="TYX").shape == (2, 192, 192)
    holed = low.copy()
    holed[10, 20] = np.nan
    out = denoise(holed, model)
    assert np.isnan(out[20:22, 40:42]).all() and np.isfinite(out).sum() == out.size - 4


def test_layer_scale_and_translate_for_the_larger_output(model_x2):
    model = model_x2[0].model
    assert growth(model, "TYX") == {"Y": 2, "X": 2}
    assert output_scale(model, (1.0, 0.4, 0.4), "TYX") == (1.0, 0.2, 0.2)
    # the first output pixel's centre sits a quarter input pixel before the input pixel's centre
    assert output_translate(model, (1.0, 0.4, 0.4), (0.0, 10.0, 0.0), "TYX") == pytest.approx((0.0, 9.9, -0.1))


def test_denoise_command_writes_the_larger_image_with_the_pixel_size_divided(pair, model_x2, tmp_path, capsys):
    low, _ = pair
    write_image(tmp_path / "cells.tif", low, {"Y": 0.5, "X": 0.5}, "YX")
    rc = main(["denoise", str(tmp_path / "cells.tif"), "-m", str(model_x2[1]), "-o", str(tmp_path / "out"),
               "--tile", "64"])
    assert rc == 0
    written = read_image(tmp_path / "out" / "cells_denoised.tif")
    assert written.data.shape == (192, 192)
    assert written.scale["Y"] == pytest.approx(0.25) and written.scale["X"] == pytest.approx(0.25)


def test_train_care_upsample_from_folders(pair, tmp_path, capsys):
    low, high = pair
    for sub, image in (("low", low), ("high", high)):
        (tmp_path / sub).mkdir()
        tifffile.imwrite(tmp_path / sub / "a.tif", image)
    assert main(["train", "care", "--images", str(tmp_path / "low"), "--targets", str(tmp_path / "high"),
                 "-o", str(tmp_path / "m"), "--upsample", "2", "--epochs", "1", "--patch", "32",
                 "--steps-per-epoch", "5", "--batch-size", "2", "--device", "cpu"]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["upsample"]["factors"] == [2, 2]
    assert main(["denoise", str(tmp_path / "low"), "-m", str(tmp_path / "m"), "-o", str(tmp_path / "out")]) == 0
    assert tifffile.imread(tmp_path / "out" / "a_denoised.tif").shape == high.shape
    # pairs that are not the factor apart are refused, naming both sizes, and nothing is written
    capsys.readouterr()
    assert main(["train", "care", "--images", str(tmp_path / "low"), "--targets", str(tmp_path / "low"),
                 "-o", str(tmp_path / "m2"), "--upsample", "2", "--epochs", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "96x96" in err and "192x192" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m2").exists()
    with pytest.raises(SystemExit) as refused:  # argparse refuses a factor outside the declared choices
        main(["train", "care", "--images", str(tmp_path / "low"), "--targets", str(tmp_path / "high"),
              "-o", str(tmp_path / "m3"), "--upsample", "3", "--epochs", "1"])
    assert refused.value.code == 2 and "one of 1, 2, 4" in capsys.readouterr().err
    assert not (tmp_path / "m3").exists()


def test_x4_in_plane(pair):
    _, high = pair
    low = shrink(high, (4, 4))
    result = run_to_end(train_restoration([low], [high], TrainSettings(epochs=1, upsample=4, **{**FAST,
                                                                                                "patch": 16})))
    assert result.model.config["upsample"]["factors"] == [4, 4]
    assert denoise(low, result.model).shape == high.shape


def test_isotropic_restoration_along_z():
    rng = np.random.default_rng(0)
    high = rng.random((16, 32, 32)).astype(np.float32)
    high = (high + np.roll(high, 1, 0) + np.roll(high, 1, 1)) / 3  # some structure to learn
    low = shrink(high, (2, 1, 1))
    result = run_to_end(train_restoration([low], [high], TrainSettings(epochs=1, upsample=2, **{**FAST,
                                                                                                "patch": 16})))
    model = result.model
    assert model.config["upsample"] == {"factors": [2, 1, 1], "axes": "Z"}
    assert tuple(model.config["unet"]["pool"]) == (1, 2, 2)  # Z is the coarse axis already: pooled in-plane only
    assert denoise(low, model).shape == (16, 32, 32)
    assert denoise(low, model, tile=16).shape == (16, 32, 32)
    assert output_scale(model, (2.0, 0.5, 0.5), "ZYX") == (1.0, 0.5, 0.5)


def test_the_upsampling_setting_takes_whole_factors_from_its_choices():
    spec = next(s for s in get_kind("care").train_settings if s.name == "upsample")
    assert spec.check("2") == 2 and spec.check(4) == 4 and spec.default == 1
    with pytest.raises(UserError, match="Upsampling cannot be 3"):
        spec.check(3)
    assert "upsample" not in {s.name for s in get_kind("n2v").train_settings}


def test_applying_with_a_ground_truth_scores_the_interpolated_input_and_the_output(pair, model_x2):
    low, high = pair
    applied = run_to_end(apply_job(model_x2[0].model, low, truth=high))
    assert applied.image.shape == high.shape and applied.growth == {"Y": 2, "X": 2}
    assert applied.scores["output"]["psnr"] > applied.scores["input"]["psnr"]
    assert quality_text(applied.scores).count("scale-invariant") == 2


def test_blockwise_denoising_refuses_an_upsampling_model_before_writing(pair, model_x2, tmp_path):
    low, _ = pair
    store = write_ngff(tmp_path / "low.ome.zarr", low, "yx", chunks=(48, 48))
    job = BlockwiseDenoiseJob(image=open_image(store), model=model_x2[0].model, output=tmp_path / "out.ome.zarr",
                              block=48, cluster=ClusterChoice(workers=1, processes=False), device="cpu")
    with pytest.raises(UserError, match="upsamples 2x"):
        run_to_end(blockwise_denoise_job(job))
    assert not (tmp_path / "out.ome.zarr").exists()
