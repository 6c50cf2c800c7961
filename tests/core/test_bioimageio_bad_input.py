"""Broken, hostile or unfitting bioimage.io packages: each a clear message, and nothing written."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile
from bioimageio_helpers import blob_stardist_3d, edit_yaml, export, state_dict_only, unpacked, zipped

from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.loader import load_model
from napari_dlmicro.core.models.paths import bioimageio_dir


@pytest.fixture(scope="module")
def package(trained_stardist, nuclei, tmp_path_factory):
    img, _ = nuclei
    return export(trained_stardist, tmp_path_factory.mktemp("pkg") / "stardist.zip", img[:160, 256:416])


@pytest.fixture
def image_file(nuclei, tmp_path):
    path = tmp_path / "in" / "img.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, nuclei[0][:160, :160])
    return path


def _segment_cli_refuses(ref, image_file, tmp_path, capsys, words: str, *extra: str) -> None:
    """The CLI exits 2 with a one-line reason naming ``words``, and writes nothing."""
    out = tmp_path / "out"
    code = main(["segment", str(image_file), "-m", str(ref), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_unknown_format_version(package, image_file, tmp_path, capsys):
    folder = edit_yaml(unpacked(package, tmp_path / "p"), lambda rdf: rdf.update(format_version="0.9.0"))
    _segment_cli_refuses(folder, image_file, tmp_path, capsys, "model spec 0.9.0")


def test_weights_missing(package, image_file, tmp_path, capsys):
    folder = unpacked(package, tmp_path / "p")
    (folder / "weights.onnx").unlink()
    _segment_cli_refuses(folder, image_file, tmp_path, capsys, "missing")


def test_weights_whose_sha256_does_not_match(package, image_file, tmp_path, capsys):
    folder = unpacked(package, tmp_path / "p")
    data = bytearray((folder / "weights.onnx").read_bytes())
    data[-1] ^= 0xFF
    (folder / "weights.onnx").write_bytes(bytes(data))
    _segment_cli_refuses(folder, image_file, tmp_path, capsys, "sha256")


def test_a_weight_format_this_machine_cannot_run(package, image_file, tmp_path, capsys):
    def tensorflow_js_only(rdf):
        entry = dict(rdf["weights"]["onnx"])
        entry.pop("opset_version")
        entry.pop("parent", None)
        entry["tensorflow_version"] = "2.15"
        rdf["weights"] = {"tensorflow_js": entry}

    folder = edit_yaml(unpacked(package, tmp_path / "p"), tensorflow_js_only)
    _segment_cli_refuses(folder, image_file, tmp_path, capsys, "cannot run")


def test_a_saved_model_without_tensorflow_says_what_to_install(package, tmp_path, monkeypatch):
    from napari_dlmicro.core.models.bioimageio import weights

    def saved_model_only(rdf):
        entry = dict(rdf["weights"]["onnx"])
        entry.pop("opset_version")
        entry.pop("parent", None)
        entry["tensorflow_version"] = "2.15"
        rdf["weights"] = {"tensorflow_saved_model_bundle": entry}

    folder = edit_yaml(unpacked(package, tmp_path / "p"), saved_model_only)
    monkeypatch.setattr(weights, "tensorflow_installed", lambda: False)
    with pytest.raises(UserError, match="(?i)install tensorflow"):
        load_model(folder)


def test_state_dict_without_confirmation(package, image_file, tmp_path, capsys):
    marker = tmp_path / "ran"
    folder = state_dict_only(package, tmp_path / "p", marker)
    _segment_cli_refuses(folder, image_file, tmp_path, capsys, "--trust-code")
    assert not marker.exists()  # the package's code never ran


def test_a_3d_model_on_2d_data(tmp_path, image_file, capsys):
    model, volume = blob_stardist_3d()
    package = export(model, tmp_path / "p3d.zip", volume)
    _segment_cli_refuses(package, image_file, tmp_path, capsys, "3D model")


def test_five_channels_for_a_one_channel_model(package, nuclei, tmp_path, capsys):
    path = tmp_path / "in" / "five.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, np.stack([nuclei[0][:160, :160]] * 5), metadata={"axes": "CYX"})
    _segment_cli_refuses(package, path, tmp_path, capsys, "one channel", "--axes", "CYX")


def test_a_denoiser_on_data_of_other_dimensions(trained_n2v, noisy_crop, tmp_path):
    package = export(trained_n2v, tmp_path / "n2v.zip", noisy_crop[0])
    with pytest.raises(UserError, match="2D"):
        denoise(np.stack([noisy_crop[0]] * 4), str(package), axes="ZYX")


def test_a_zip_that_unpacks_outside_its_folder(package, image_file, tmp_path, capsys):
    folder = unpacked(package, tmp_path / "p")
    evil = zipped(folder, tmp_path / "evil.zip")
    with zipfile.ZipFile(evil, "a") as z:
        z.writestr("../escaped.txt", "overwritten")
    _segment_cli_refuses(evil, image_file, tmp_path, capsys, "outside its folder")
    assert not (bioimageio_dir().parent / "escaped.txt").exists()
    assert not (bioimageio_dir().exists() and [p for p in bioimageio_dir().iterdir() if "evil" in p.name])


def test_an_absolute_member_is_refused_too(package, tmp_path):
    evil = zipped(unpacked(package, tmp_path / "p"), tmp_path / "evil.zip")
    with zipfile.ZipFile(evil, "a") as z:
        z.writestr("/tmp/absolute.txt", "x")
    with pytest.raises(UserError, match="outside its folder"):
        segment(np.random.default_rng(0).random((64, 64)), str(evil))
