"""bioimage.io packages as one more source of models: through our StarDist, semantic and restoration paths,
tiled, cancellable, with progress; a package we export gives the original's output when imported again."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile
from bioimageio.spec import load_description
from bioimageio_helpers import edit_yaml, export, unpacked
from stardist.matching import matching

from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.bioimageio import package as package_module
from napari_dlmicro.core.models.bioimageio.restorer import PackageRestorer
from napari_dlmicro.core.models.bioimageio.segmenters import PackageSemantic, PackageStarDist
from napari_dlmicro.core.models.loader import kind_of, load_model
from napari_dlmicro.core.models.paths import bioimageio_dir
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Progress, run_to_end


@pytest.fixture(scope="module")
def stardist_package(trained_stardist, nuclei, tmp_path_factory):
    img, _ = nuclei
    return export(trained_stardist, tmp_path_factory.mktemp("pkg") / "stardist.zip", img[:160, 256:416])


@pytest.fixture(scope="module")
def n2v_package(trained_n2v, noisy_crop, tmp_path_factory):
    return export(trained_n2v, tmp_path_factory.mktemp("pkg") / "n2v.zip", noisy_crop[0])


def _same_labels(a: np.ndarray, b: np.ndarray) -> None:
    assert a.max() > 10
    assert matching(a, b, thresh=0.5).f1 == 1.0
    assert np.array_equal(a, b)


def test_stardist_round_trip_gives_identical_labels(stardist_package, trained_stardist, right_half):
    img, _ = right_half
    assert kind_of(stardist_package) == "stardist"
    imported = load_model(stardist_package)
    assert isinstance(imported, PackageStarDist) and imported.info.normalises
    assert imported.default_views == load_model(trained_stardist).default_views
    for tile in (None, 128):
        original = segment(img, str(trained_stardist), axes="YX", tile=tile, engine="torch").labels
        _same_labels(original, segment(img, str(stardist_package), axes="YX", tile=tile).labels)


def test_package_folder_and_its_yaml_are_sources_too(stardist_package, trained_stardist, right_half, tmp_path):
    crop, _ = right_half
    original = segment(crop, str(trained_stardist), axes="YX", engine="torch").labels
    folder = unpacked(stardist_package, tmp_path / "unpacked")
    for ref in (folder, folder / "rdf.yaml"):
        _same_labels(original, segment(crop, str(ref), axes="YX").labels)


def test_imported_stardist_tiles_with_progress_and_cancels(stardist_package, right_half):
    img, _ = right_half
    model = load_model(stardist_package)
    x = np.asarray(img, np.float32)[..., None]
    events = []
    run_to_end(model.segment(x, {}, CancelToken(), tile=128), events.append)
    ticks = [e for e in events if isinstance(e, Progress)]
    assert len(ticks) > 2 and ticks[-1].fraction == 1.0
    token = CancelToken()
    model._cache = None

    def cancel_after_first_tile(event):
        if isinstance(event, Progress):
            token.cancel()

    with pytest.raises(Cancelled):
        run_to_end(model.segment(x, {}, token, tile=128), cancel_after_first_tile)


def test_cli_segment_takes_a_package(stardist_package, right_half, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "img.tif", right_half[0][:200, :200])
    code = main(["segment", str(tmp_path / "img.tif"), "-m", str(stardist_package), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "img_labels.tif").is_file()


def test_n2v_round_trip_within_tolerance(n2v_package, trained_n2v, noisy_crop):
    noisy = np.pad(noisy_crop[0], 40, mode="reflect")  # larger than the package's smallest input
    assert kind_of(n2v_package) == "n2v"
    imported = load_model(n2v_package)
    assert isinstance(imported, PackageRestorer)
    for tta in (False, True):
        original = denoise(noisy, str(trained_n2v), tta=tta, engine="torch")
        np.testing.assert_allclose(denoise(noisy, imported, tta=tta), original, rtol=1e-3, atol=1e-3)


def test_care_round_trip_within_tolerance(trained_care, noisy_crop, tmp_path):
    """Exact on the image the package was made from; elsewhere close: the package fixes CARE's output range.

    A CARE model in relative intensity takes its output range from each input's
    percentiles, which bioimage.io's postprocessing cannot express; the package
    keeps the range of its test input.
    """
    package = export(trained_care, tmp_path / "care.zip", noisy_crop[0])
    with zipfile.ZipFile(package) as z, z.open("test_input.npy") as f:
        test_image = np.load(f)[0, 0]  # the crop the package's test was made from
    original = denoise(test_image, str(trained_care), engine="torch")
    np.testing.assert_allclose(denoise(test_image, str(package)), original, rtol=1e-3, atol=1e-3)
    other = np.pad(test_image, 40, mode="reflect")
    original = denoise(other, str(trained_care), engine="torch")
    span = float(np.ptp(original))
    assert float(np.abs(denoise(other, str(package)) - original).max()) < 0.05 * span  # 2.3 % measured


def test_semantic_round_trip_gives_equal_classes(trained_semantic, nuclei, tmp_path):
    img = nuclei[0][:256, :256]
    package = export(trained_semantic, tmp_path / "semantic.zip", img[:96, :96])
    assert isinstance(load_model(package), PackageSemantic)
    for tile in (None, 128):
        original = segment(img, str(trained_semantic), axes="YX", tile=tile, engine="torch")
        imported = segment(img, str(package), axes="YX", tile=tile)
        assert imported.class_map and original.labels.max() == 1
        assert np.array_equal(original.labels, imported.labels)


def test_restorer_tiles_with_progress_and_cancels(n2v_package, noisy_crop):
    model = load_model(n2v_package)
    sample = np.pad(noisy_crop[0], 100, mode="reflect")[None]
    events = []
    out = run_to_end(model.predict_sample(sample, tile=160), events.append)
    assert out.shape == sample.shape and len([e for e in events if isinstance(e, Progress)]) > 1
    token = CancelToken()
    with pytest.raises(Cancelled):
        run_to_end(model.predict_sample(sample, tile=160, token=token), lambda e: token.cancel())


def test_cli_denoise_takes_a_package(n2v_package, noisy_crop, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "noisy.tif", np.pad(noisy_crop[0], 40, mode="reflect"))
    code = main(["denoise", str(tmp_path / "noisy.tif"), "-m", str(n2v_package), "-o", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "noisy_denoised.tif").is_file()


def test_a_zip_is_unpacked_once(stardist_package):
    load_model(stardist_package)
    folders = sorted(p.name for p in bioimageio_dir().iterdir())
    load_model(stardist_package)
    assert sorted(p.name for p in bioimageio_dir().iterdir()) == folders and len(folders) == 1


def test_zoo_id_offline_names_the_url_and_the_folder(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(package_module, "save_bioimageio_package_as_folder", offline)
    with pytest.raises(UserError) as err:
        load_model("bioimageio:affable-shark")
    text = str(err.value)
    assert "https://" in text and "affable-shark" in text and str(bioimageio_dir() / "zoo") in text
    assert not list((bioimageio_dir() / "zoo").glob("affable-shark*"))


def test_zoo_id_already_downloaded_needs_no_network(stardist_package, right_half, monkeypatch):
    def offline(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(package_module, "save_bioimageio_package_as_folder", offline)
    unpacked(stardist_package, bioimageio_dir() / "zoo" / "placid-octopus")
    model = load_model("placid-octopus")
    assert isinstance(model, PackageStarDist)


def test_state_dict_only_runs_its_code_after_confirmation(stardist_package, trained_stardist, right_half, tmp_path):
    def state_dict_only(rdf):
        rdf["weights"] = {"pytorch_state_dict": rdf["weights"]["pytorch_state_dict"]}

    folder = edit_yaml(unpacked(stardist_package, tmp_path / "sd"), state_dict_only)
    with pytest.raises(UserError, match="trust-code"):
        load_model(folder)
    crop = right_half[0]
    original = segment(crop, str(trained_stardist), axes="YX", engine="torch").labels
    _same_labels(original, segment(crop, str(folder), axes="YX", trust_code=True).labels)


def test_an_official_stardist_folder_travels_with_its_keras_weights(nuclei, tmp_path):
    """Exported from an official (Keras) folder, the package carries StarDist's own files; imported again, the
    Keras weights load into our network through our Keras loader, and the labels are the folder's."""
    from test_keras_weights import _config_2d, _keras_layers_2d, _official_folder, _random_net

    from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter

    cfg = _config_2d()
    folder = _official_folder(tmp_path, cfg, _keras_layers_2d(_random_net(cfg, seed=3)))
    package = export(folder, tmp_path / "official.zip")
    descr = load_description(package, perform_io_checks=True)
    assert descr.config.stardist["weights"] == "stardist_weights.h5" and descr.config.stardist["config"] == cfg
    assert {str(a.source.path) for a in descr.attachments} >= {"stardist_weights.h5", "stardist_config.json"}
    imported = load_model(package)
    assert type(imported) is StarDistSegmenter  # our own network: every engine applies
    img = nuclei[0][:192, :192]
    assert np.array_equal(segment(img, str(folder), axes="YX").labels, segment(img, imported, axes="YX").labels)
