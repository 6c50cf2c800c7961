"""Our models as bioimage.io packages (model spec 0.5): built and validated with bioimageio.spec, complete, and
passing bioimageio.core's own test."""
from __future__ import annotations

import json
import zipfile

import imageio.v3 as iio
import numpy as np
import pytest
from bioimageio.spec import load_description
from bioimageio.spec.model import v0_5
from bioimageio.spec.utils import get_sha256
from bioimageio_helpers import META, blob_stardist_3d, export

from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.jobs.export import check_package, export_model_job
from napari_dlmicro.core.models.bioimageio.meta import ExportMeta
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Progress, run_to_end


@pytest.fixture(scope="module")
def stardist_package(trained_stardist, nuclei, tmp_path_factory):
    img, _ = nuclei
    return export(trained_stardist, tmp_path_factory.mktemp("pkg") / "stardist.zip", img[:160, 256:416])


@pytest.fixture(scope="module")
def stardist_3d_package(tmp_path_factory):
    model, volume = blob_stardist_3d()
    return export(model, tmp_path_factory.mktemp("pkg") / "stardist3d.zip", volume)


def _descr(package) -> v0_5.ModelDescr:
    descr = load_description(package, perform_io_checks=True)
    assert isinstance(descr, v0_5.ModelDescr), descr.validation_summary.format()
    return descr


def test_exported_stardist_passes_bioimageio_test(stardist_package):
    status, report = check_package(stardist_package)
    assert status == "passed", report


def test_stardist_package_is_complete(stardist_package, trained_stardist):
    descr = _descr(stardist_package)
    assert descr.format_version.startswith("0.5")
    ours = json.loads((trained_stardist / "config.json").read_text())
    with zipfile.ZipFile(stardist_package) as z:
        names = set(z.namelist())
        for fmt in ("onnx", "torchscript", "pytorch_state_dict"):
            entry = getattr(descr.weights, fmt)
            assert entry is not None and str(entry.source.path) in names
            assert entry.sha256 is not None
        cover = iio.imread(z.read(str(descr.covers[0].source.path)), extension=".png")
        readme = z.read(str(descr.documentation.source.path)).decode()
    arch = descr.weights.pytorch_state_dict.architecture
    assert str(arch.callable) == "build_network" and arch.sha256 is not None
    assert arch.kwargs["kind"] == "stardist" and arch.kwargs["config"]["n_rays"] == ours["net"]["n_rays"]
    assert [str(a.id) for a in descr.inputs[0].axes] == ["batch", "channel", "y", "x"]
    assert [str(a.id) for a in descr.outputs[0].axes] == ["batch", "y", "x", "channel"]
    assert all(a.halo > 0 for a in descr.outputs[0].axes if str(a.id) in "yx")
    pre = [p for p in descr.inputs[0].preprocessing if p.id == "scale_range"][0].kwargs
    assert (pre.min_percentile, pre.max_percentile) == (1.0, 99.8)
    post = descr.outputs[0].postprocessing[0]
    assert post.id == "stardist_postprocessing"
    assert post.kwargs.prob_threshold == pytest.approx(ours["thresholds"]["prob"])
    assert post.kwargs.nms_threshold == pytest.approx(ours["thresholds"]["nms"])
    assert tuple(post.kwargs.grid) == (2, 2) and post.kwargs.n_rays == ours["net"]["n_rays"] and post.kwargs.b == 0
    config = descr.config.model_extra["napari_dlmicro"]
    assert config["kind"] == "stardist" and config["model"]["seed_border"] == ours["seed_border"]
    assert config["history"] == json.loads(json.dumps(ours.get("history", [])))
    assert descr.config.stardist["thresholds"]["prob"] == pytest.approx(ours["thresholds"]["prob"])
    assert descr.config.stardist["config"]["n_rays"] == ours["net"]["n_rays"]
    assert cover.shape[1] == 2 * cover.shape[0]
    assert "# Validation" in readme or "## Validation" in readme
    assert [a.name for a in descr.authors] == list(META.authors) and str(descr.license) == "MIT"
    dois = {str(c.doi) for c in descr.cite}
    assert {"10.1007/978-3-030-00934-2_30", "10.1234/test.5678"} <= dois


def test_weights_sha256_match_their_files(stardist_package, tmp_path):
    descr = _descr(stardist_package)
    with zipfile.ZipFile(stardist_package) as z:
        z.extractall(tmp_path)
    for fmt in ("onnx", "torchscript", "pytorch_state_dict"):
        entry = getattr(descr.weights, fmt)
        assert str(get_sha256(tmp_path / str(entry.source.path))) == str(entry.sha256)


def test_exported_n2v_passes_bioimageio_test(trained_n2v, noisy_crop, tmp_path):
    package = export(trained_n2v, tmp_path / "n2v.zip", noisy_crop[0])
    descr = _descr(package)
    assert descr.outputs[0].postprocessing[0].id == "scale_linear"
    ours = json.loads((trained_n2v / "config.json").read_text())
    config = descr.config.model_extra["napari_dlmicro"]
    assert config["kind"] == "n2v" and config["history"] and config["history"] == json.loads(json.dumps(
        ours["history"]))
    assert config["model"]["normalization"] == json.loads(json.dumps(ours["normalization"]))
    assert "10.1007/978-3-031-25069-9_33" in {str(c.doi) for c in descr.cite}  # N2V2's own paper
    status, report = check_package(package)
    assert status == "passed", report


def test_exported_semantic_passes_bioimageio_test(trained_semantic, nuclei, tmp_path):
    package = export(trained_semantic, tmp_path / "semantic.zip", nuclei[0][:96, :96])
    descr = _descr(package)
    assert descr.outputs[0].postprocessing[0].id == "softmax"
    assert len(descr.outputs[0].axes[1].channel_names) == 2
    status, report = check_package(package)
    assert status == "passed", report


def test_exported_3d_stardist_passes_bioimageio_test(stardist_3d_package):
    descr = _descr(stardist_3d_package)
    kwargs = descr.outputs[0].postprocessing[0].kwargs
    assert tuple(kwargs.grid) == (1, 2, 2) and tuple(kwargs.anisotropy) == (2.0, 1.0, 1.0)
    assert [str(a.id) for a in descr.inputs[0].axes] == ["batch", "channel", "z", "y", "x"]
    status, report = check_package(stardist_3d_package)
    assert status == "passed", report


def test_care_package_validates(trained_care, noisy_crop, tmp_path):
    descr = _descr(export(trained_care, tmp_path / "care.zip", noisy_crop[0]))
    assert [p.id for p in descr.inputs[0].preprocessing if p.id != "ensure_dtype"] == ["scale_range"]
    assert descr.config.model_extra["napari_dlmicro"]["kind"] == "care"


def test_authors_licence_and_citations_are_remembered(trained_n2v, noisy_crop, tmp_path):
    export(trained_n2v, tmp_path / "first.zip", noisy_crop[0])
    second = run_to_end(export_model_job(trained_n2v, tmp_path / "second.zip", ExportMeta(name="My denoiser"),
                                         test_image=noisy_crop[0])).path
    descr = _descr(second)
    assert str(descr.name) == "My denoiser"
    assert [a.name for a in descr.authors] == list(META.authors) and str(descr.license) == "MIT"
    assert "10.1234/test.5678" in {str(c.doi) for c in descr.cite}


def test_cli_export_writes_the_package(trained_n2v, noisy_crop, tmp_path, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "test.tif", noisy_crop[0])
    out = tmp_path / "n2v.zip"
    code = main(["export", str(trained_n2v), "-o", str(out), "--author", "Ada Tester", "--licence", "CC-BY-4.0",
                 "--cite", "Tester et al., 2026 | https://example.com/paper",
                 "--test-image", str(tmp_path / "test.tif")])
    assert code == 0 and out.is_file()
    assert str(out) in capsys.readouterr().out
    assert "https://example.com/paper" in {str(c.url) for c in _descr(out).cite}


@pytest.mark.parametrize("flags, words", [
    (["--licence", "not-a-licence"], "licence"),
    (["--name", "é"], "cannot name"),
    (["--cite", "no reference"], "DOI or URL"),
])
def test_cli_export_bad_metadata_exits_2_and_writes_nothing(trained_n2v, tmp_path, capsys, flags, words):
    out = tmp_path / "n2v.zip"
    code = main(["export", str(trained_n2v), "-o", str(out), "--author", "A"] + flags)
    assert code == 2 and words in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [] or not out.exists()


def test_export_needs_an_author(trained_n2v, tmp_path):
    with pytest.raises(UserError, match="authors"):
        run_to_end(export_model_job(trained_n2v, tmp_path / "n2v.zip"))
    assert not (tmp_path / "n2v.zip").exists()


def test_cellpose_cannot_be_exported(tmp_path):
    from napari_dlmicro.core.models.bioimageio.export import describe

    with pytest.raises(UserError, match="cannot be exported"):
        describe(object())


def test_cancelled_export_leaves_nothing(trained_n2v, noisy_crop, tmp_path):
    token = CancelToken()
    out = tmp_path / "n2v.zip"

    def cancel_on_weights(event):
        if isinstance(event, Progress) and "weights" in event.message:
            token.cancel()

    with pytest.raises(Cancelled):
        run_to_end(export_model_job(trained_n2v, out, META, test_image=noisy_crop[0], token=token), cancel_on_weights)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] in ([], ["config"])  # remembered metadata


def test_test_input_comes_from_the_models_own_data(tmp_path):
    """A model trained from files records them; the first that exists gives the test input."""
    import tifffile

    from napari_dlmicro.core.models.bioimageio.sample_input import choose_test_input

    image = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint16)
    tifffile.imwrite(tmp_path / "train.tif", image)
    raw, origin = choose_test_input(None, None, {"data": {"sources": [str(tmp_path / "gone.tif"),
                                                                      str(tmp_path / "train.tif")]}}, 2, 1)
    assert "train.tif" in origin and raw.shape == (1, 64, 64) and np.array_equal(raw[0], image)
