"""A package built by its own Python code: refused with the file and its sha256 named, and run once trusted."""
from __future__ import annotations

import numpy as np
import pytest
from bioimageio.spec.utils import get_sha256
from bioimageio_helpers import export, state_dict_only

from napari_dlmicro.core.errors import UntrustedCode, UserError
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.bioimageio.restorer import PackageRestorer
from napari_dlmicro.core.models.loader import code_to_trust, load_model


@pytest.fixture(scope="module")
def n2v_package(trained_n2v, noisy_crop, tmp_path_factory):
    return export(trained_n2v, tmp_path_factory.mktemp("pkg") / "n2v.zip", noisy_crop[0])


@pytest.fixture(scope="module")
def stardist_package(blob_stardist_2d, tmp_path_factory):
    model, image = blob_stardist_2d
    return export(model, tmp_path_factory.mktemp("pkg") / "blobs.zip", image)


def test_without_trust_the_error_names_the_package_its_source_and_hash(n2v_package, tmp_path):
    marker = tmp_path / "ran"
    folder = state_dict_only(n2v_package, tmp_path / "p", marker)
    with pytest.raises(UntrustedCode) as caught:
        load_model(folder)
    err = caught.value
    assert isinstance(err, UserError) and "--trust-code" in str(err) and "network.py" in str(err)
    assert err.source == "network.py" and err.sha256 == str(get_sha256(folder / "network.py"))
    assert err.package and err.package in str(err)
    probed = code_to_trust(str(folder))  # what a dock asks about, found without running anything
    assert (probed.package, probed.source, probed.sha256) == (err.package, err.source, err.sha256)
    assert not marker.exists()


def test_with_trust_the_package_runs_its_code_and_gives_the_original_output(n2v_package, trained_n2v, noisy_crop,
                                                                            tmp_path):
    marker = tmp_path / "ran"
    folder = state_dict_only(n2v_package, tmp_path / "p", marker)
    model = load_model(folder, trust_code=True)
    assert marker.exists() and isinstance(model, PackageRestorer) and model.runner.net.format == "pytorch_state_dict"
    noisy = np.pad(noisy_crop[0], 40, mode="reflect")  # larger than the package's smallest input
    original = denoise(noisy, str(trained_n2v), engine="torch")
    np.testing.assert_allclose(denoise(noisy, model), original, rtol=1e-3, atol=1e-3)  # the round trip's tolerance


def test_a_segmentation_package_trusted_segments_as_the_onnx_weights_do(stardist_package, blob_stardist_2d,
                                                                       tmp_path):
    folder = state_dict_only(stardist_package, tmp_path / "p")
    _, image = blob_stardist_2d
    with pytest.raises(UntrustedCode):
        segment(image, str(folder), axes="YX")
    trusted = segment(image, str(folder), axes="YX", trust_code=True).labels
    assert trusted.max() == 3 and np.array_equal(trusted, segment(image, str(stardist_package), axes="YX").labels)


def test_packages_with_other_weights_need_no_trust(n2v_package, trained_n2v):
    assert code_to_trust(str(n2v_package)) is None  # ONNX and TorchScript run without the package's code
    assert code_to_trust(str(trained_n2v)) is None  # our own folders never run code of theirs
