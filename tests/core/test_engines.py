"""Our networks on ONNX Runtime and OpenVINO (CPU): the same labels as torch, images within 1e-4; exported once
per set of weights; ``auto`` measures once and remembers."""
from __future__ import annotations

import json
import pickle
import threading

import numpy as np
import pytest
import tifffile
import torch
from stardist.matching import matching

from napari_dlmicro.cli import main
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.engines import auto, choice
from napari_dlmicro.core.models.engines.backends import OpenVinoBackend, OrtBackend
from napari_dlmicro.core.models.engines.choice import check_engine
from napari_dlmicro.core.models.engines.onnx_export import cached_onnx
from napari_dlmicro.core.models.engines.runner import NetRunner
from napari_dlmicro.core.models.restoration.network import build_model, load_restoration
from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
from napari_dlmicro.core.nets.unet import UNetConfig
from napari_dlmicro.core.runtime.cancel import CancelToken

CPU = torch.device("cpu")
ENGINES = ("onnxruntime", "openvino")


@pytest.mark.parametrize("engine", ENGINES)
def test_stardist_labels_are_torchs_on_every_engine(trained_stardist, right_half, engine):
    img, _ = right_half
    model = get_segmenter(trained_stardist, CPU)
    for tile in (None, 128):
        reference = segment(img, model, axes="YX", tile=tile, engine="torch").labels
        labels = segment(img, model, axes="YX", tile=tile, engine=engine).labels
        assert model.runner.last_engine == engine and reference.max() > 10
        assert matching(reference, labels, thresh=0.5).f1 == 1.0
        assert np.array_equal(reference, labels)


@pytest.mark.parametrize("engine", ENGINES)
def test_stardist_3d_outputs_match_torch(engine):
    torch.manual_seed(0)
    net = StarDistNet(StarDistNetConfig(ndim=3, n_rays=16, grid=(1, 2, 2), backbone="resnet", resnet_blocks=2,
                                        resnet_filters=8, conv_after=16)).eval()
    model = StarDistSegmenter(net, name="3d")
    x = np.random.default_rng(0).random((12, 40, 36, 1), np.float32)
    reference = model.forward(x)
    model.use_engine(engine)
    for a, b in zip(reference, model.forward(x)):
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("engine", ENGINES)
def test_semantic_classes_are_torchs_on_every_engine(trained_semantic, nuclei, engine):
    img = nuclei[0][:256, :256]
    for tile in (None, 128):
        reference = segment(img, str(trained_semantic), axes="YX", tile=tile, engine="torch").labels
        assert np.array_equal(reference, segment(img, str(trained_semantic), axes="YX", tile=tile,
                                                 engine=engine).labels)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("which", ["trained_n2v", "trained_care"])
def test_restoration_images_within_1e4_on_every_engine(which, engine, noisy_crop, request):
    model = load_restoration(request.getfixturevalue(which))
    noisy = noisy_crop[0]
    for tta in (False, True):
        reference = denoise(noisy, model, tta=tta, tile=64, engine="torch")
        out = denoise(noisy, model, tta=tta, tile=64, engine=engine)
        assert model.runner.last_engine == engine
        scale = float(np.abs(reference).max())
        np.testing.assert_allclose(out / scale, reference / scale, atol=1e-4)


def test_openvino_runs_in_float32(trained_stardist):
    model = get_segmenter(trained_stardist, CPU)
    x = np.zeros((1, 1, 64, 64), np.float32)
    path = cached_onnx(model.net, torch.from_numpy(x), ("prob", "dist"), model.runner.fingerprint())
    assert OpenVinoBackend(path, 1).precision.lower() in ("f32", "<type: 'float32'>", "float32")


def _tiny_net() -> StarDistNet:
    torch.manual_seed(1)
    return StarDistNet(StarDistNetConfig(ndim=2, n_rays=8, unet=UNetConfig(ndim=2, depth=1, filters=4),
                                         conv_after=8)).eval()


def _torch_forward(net):
    def forward(x, token=None):
        with torch.inference_mode():
            return tuple(t.numpy() for t in net(torch.from_numpy(x)))
    return forward


def test_auto_measures_once_and_remembers(tmp_path, monkeypatch):
    monkeypatch.setenv("DLMICRO_ENGINES", str(tmp_path / "engines"))
    monkeypatch.setattr(auto, "_MEMORY", {})
    measured = []
    real = auto.measure
    monkeypatch.setattr(auto, "measure", lambda runs: measured.append(sorted(runs)) or real(runs))
    net = _tiny_net()
    x = np.random.default_rng(0).random((1, 1, 64, 64), np.float32)
    first = NetRunner(net, _torch_forward(net), "auto", ("prob", "dist"))
    out = first(x)
    assert measured == [sorted(["torch", "onnxruntime", "openvino"])]
    decisions = json.loads((tmp_path / "engines" / "decisions.json").read_text())
    (entry,) = decisions.values()
    assert entry["engine"] == first.last_engine and set(entry["seconds"]) == {"torch", "onnxruntime", "openvino"}
    for a, b in zip(out, _torch_forward(net)(x)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    monkeypatch.setattr(auto, "_MEMORY", {})  # as in a new session: the file remembers
    second = NetRunner(net, _torch_forward(net), "auto", ("prob", "dist"))
    second(x)
    assert len(measured) == 1 and second.last_engine == first.last_engine


def test_networks_are_exported_once_per_set_of_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("DLMICRO_ENGINES", str(tmp_path / "engines"))
    net = _tiny_net()
    runner = NetRunner(net, _torch_forward(net), "onnxruntime", ("prob", "dist"))
    x = np.random.default_rng(0).random((1, 1, 32, 32), np.float32)
    runner(x)
    runner(np.random.default_rng(1).random((1, 1, 48, 40), np.float32))  # another size: the same file
    assert len(list((tmp_path / "engines").glob("*.onnx"))) == 1
    with torch.no_grad():
        net.prob.bias.add_(1.0)  # weights trained further in place
    after = runner(x)
    assert len(list((tmp_path / "engines").glob("*.onnx"))) == 2
    np.testing.assert_allclose(after[0], _torch_forward(net)(x)[0], atol=1e-5)


def test_unknown_engine_is_a_clear_error(trained_stardist, right_half, tmp_path, capsys):
    with pytest.raises(UserError, match="no engine 'tensorrt'"):
        check_engine("tensorrt")
    tifffile.imwrite(tmp_path / "img.tif", right_half[0][:128, :128])
    with pytest.raises(SystemExit) as exit_:  # argparse refuses the flag, naming the choices
        main(["segment", str(tmp_path / "img.tif"), "-m", str(trained_stardist), "-o", str(tmp_path / "out"),
              "--engine", "tensorrt"])
    assert exit_.value.code == 2 and "onnxruntime" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_cli_engine_flags(trained_stardist, trained_n2v, noisy_crop, right_half, tmp_path, engine, capsys):
    tifffile.imwrite(tmp_path / "img.tif", right_half[0][:160, :160])
    assert main(["segment", str(tmp_path / "img.tif"), "-m", str(trained_stardist), "-o", str(tmp_path / "seg"),
                 "--engine", engine]) == 0
    tifffile.imwrite(tmp_path / "noisy.tif", noisy_crop[0])
    assert main(["denoise", str(tmp_path / "noisy.tif"), "-m", str(trained_n2v), "-o", str(tmp_path / "den"),
                 "--engine", engine]) == 0, capsys.readouterr().err
    assert (tmp_path / "seg" / "img_labels.tif").is_file() and (tmp_path / "den" / "noisy_denoised.tif").is_file()


def test_networks_differing_only_in_settings_without_weights_are_not_mixed_up(tmp_path, monkeypatch):
    """CARE's residual connection has no weights: an N2V network with the same weights must not share its file."""
    monkeypatch.setenv("DLMICRO_ENGINES", str(tmp_path / "engines"))
    torch.manual_seed(0)
    n2v = build_model("n2v", 2, 1, 1, 8)
    care = build_model("care", 2, 1, 1, 8)
    care.net.load_state_dict(n2v.net.state_dict())
    x = np.random.default_rng(0).random((64, 64), np.float32)
    for model in (n2v, care):
        model.config["normalization"] = {"input_mode": "dataset", "input": {"low": [0.0], "high": [1.0]}}
        reference = denoise(x, model, engine="torch")
        np.testing.assert_allclose(denoise(x, model, engine="onnxruntime"), reference, atol=1e-5)
    assert len(list((tmp_path / "engines").glob("*.onnx"))) == 2


def test_inside_napari_openvino_is_neither_offered_nor_chosen():
    """The docks keep OpenVINO out of napari's process: it crashed it there; headless it stays available."""
    assert "openvino" in choice.engine_choices()
    choice.keep_out_of_napari()
    assert "openvino" not in choice.engine_choices() and "openvino" not in choice.cpu_engines()
    with pytest.raises(UserError, match="command"):
        choice.check_engine("openvino")
    assert choice.check_engine("auto") == "auto"


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_a_cancel_stops_a_runtime_inside_its_pass(trained_stardist, engine):
    """A cancel during one large pass ends it from inside the runtime, not after it."""
    model = get_segmenter(trained_stardist, torch.device("cpu"))
    path = cached_onnx(model.net, torch.zeros((1, 1, 64, 64)), ("prob", "dist"), model.runner.fingerprint())
    runtime = OrtBackend(path, 1) if engine == "onnxruntime" else OpenVinoBackend(path, 1)
    x = np.zeros((1, 1, 2048, 2048), np.float32)
    token = CancelToken()
    runs = []
    timer = threading.Timer(0.05, token.cancel)
    timer.start()
    with pytest.raises(Cancelled):
        runs.append(runtime.run(x, token))
    timer.join()
    assert not runs
    assert len(runtime.run(x[..., :64, :64])) == 2  # the session still runs afterwards


def test_a_loaded_model_pickles_for_a_clusters_workers(trained_stardist):
    """Blockwise jobs on a scheduler by address ship the loaded model to workers that may not see its folder."""
    model = get_segmenter(trained_stardist, torch.device("cpu"))
    again = pickle.loads(pickle.dumps(model))
    x = np.zeros((1, 1, 64, 64), np.float32)
    for a, b in zip(again.runner(x), model.runner(x)):
        np.testing.assert_array_equal(a, b)


def test_a_cancel_stops_the_export_and_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DLMICRO_ENGINES", str(tmp_path / "engines"))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        cached_onnx(_tiny_net(), torch.zeros((1, 1, 64, 64)), ("prob", "dist"), "abc", token)
    assert not list((tmp_path / "engines").glob("*.onnx"))


def test_warming_up_the_exporter_leaves_nothing_behind_and_waits_for_a_running_export(tmp_path, monkeypatch):
    import threading

    from napari_dlmicro.core.models.engines import onnx_export

    monkeypatch.setenv("DLMICRO_MODELS", str(tmp_path / "models"))
    done = []
    with onnx_export._LOCK:  # an export of a job in progress: the warm-up waits for it
        warm = threading.Thread(target=lambda: done.append(onnx_export.warm_up_exporter()))
        warm.start()
        warm.join(0.2)
        assert warm.is_alive() and not done
    warm.join(60)
    assert done == [None]
    assert not (tmp_path / "models").exists()  # a temporary file only, never the engine cache
