"""Model folders, the catalogue and the loader: bad folders and files get clear messages."""
from __future__ import annotations

import json
import pickle
import urllib.error

import pytest
import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models import catalogue, paths, store
from napari_dlmicro.core.models.loader import load_segmenter
from napari_dlmicro.core.models.stardist.folder import load_ours, save_stardist
from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
from napari_dlmicro.core.nets.unet import UNetConfig


def _small_model(n_rays=8):
    cfg = StarDistNetConfig(n_rays=n_rays, unet=UNetConfig(depth=2, filters=8))
    return StarDistSegmenter(StarDistNet(cfg), name="tiny")


def test_save_and_load_round_trip(tmp_path):
    model = _small_model()
    folder = save_stardist(model, tmp_path / "tiny", description="a test")
    loaded = load_segmenter(folder)
    x = torch.rand(1, 1, 64, 64)
    assert torch.equal(model.net(x)[1], loaded.net(x)[1])
    assert json.loads((folder / "config.json").read_text())["kind"] == "stardist"


def test_stored_models_are_listed_and_loadable_by_name(monkeypatch, tmp_path):
    save_stardist(_small_model(), paths.store_dir() / "mine")
    names = [m.name for m in store.list_models()]
    assert "mine" in names and "stardist:2D_versatile_fluo" in names
    assert load_segmenter("mine").info.kind == "stardist"


def test_missing_weights_are_explained(tmp_path):
    folder = save_stardist(_small_model(), tmp_path / "m")
    (folder / "weights.safetensors").unlink()
    with pytest.raises(UserError, match="no weights.safetensors"):
        load_ours(folder, torch.device("cpu"))


def test_pickled_weights_are_never_loaded(tmp_path):
    folder = save_stardist(_small_model(), tmp_path / "m")
    (folder / "weights.safetensors").unlink()

    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("a pickle was executed",))

    (folder / "weights.pt").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(UserError, match="pickled weights are never loaded"):
        load_segmenter(folder)


def test_mismatched_config_and_weights(tmp_path):
    folder = save_stardist(_small_model(n_rays=8), tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["net"]["n_rays"] = 16
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="do not match"):
        load_segmenter(folder)


def test_folder_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_segmenter(tmp_path / "empty")


def test_unknown_model_name():
    with pytest.raises(UserError, match="no model called"):
        load_segmenter("stardist:does_not_exist")


def test_offline_download_names_url_and_folder(monkeypatch):
    def offline(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(catalogue.urllib.request, "urlopen", offline)
    entry = catalogue.CATALOGUE["stardist:2D_versatile_fluo"]
    with pytest.raises(UserError) as err:
        catalogue.fetch_pretrained(entry)
    assert entry.url in str(err.value) and str(catalogue.pretrained_folder(entry)) in str(err.value)


def test_store_listeners_hear_every_change_until_stopped():
    from napari_dlmicro.core.models.store import notify_store_changed, on_store_changed

    heard = []
    stop = on_store_changed(heard.append)
    notify_store_changed("a")
    stop()
    notify_store_changed("b")
    assert heard == ["a"]
