"""Semantic (class-map) U-Nets through the segmentation job: loader, tiling, planes, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.data.training_sets import Pair
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.jobs.segment import SegmentJob, segment, segment_job
from napari_dlmicro.core.models.loader import load_segmenter
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Preview, Progress, run_to_end

N_CLASSES = 2  # background, nucleus


@pytest.fixture(scope="module")
def semantic_folder(nuclei, tmp_path_factory):
    """A tiny background/nucleus U-Net trained for 40 steps (~15 s) on a corner of the nuclei image."""
    from napari_dlmicro.core.jobs import train as ts

    img, gt = nuclei
    classes = (gt > 0).astype(np.uint8)
    folder = tmp_path_factory.mktemp("sem") / "nuclei-classes"
    settings = {"epochs": 4, "patch": 64, "lr": 1e-2, "val_fraction": 0.3, "depth": 2, "filters": 8}
    run_to_end(ts.train_job("semantic", [Pair("n", img[:192, :192], classes[:192, :192])], settings, out=folder,
                            device="cpu"))
    return folder


@pytest.fixture(scope="module")
def model(semantic_folder):
    return load_segmenter(semantic_folder)


def test_loader_gives_a_class_map_segmenter(model):
    assert model.info.kind == "semantic" and model.info.class_map
    assert model.info.spatial_ndim == 2 and model.info.n_channels == 1 and model.info.settings == ()
    assert model.n_classes == N_CLASSES


def test_out_of_memory_retries_in_smaller_tiles(model, nuclei, monkeypatch):
    import torch

    from napari_dlmicro.core.runtime.events import Notice

    img, _ = nuclei
    x = normalize_percentile(img[:200, :232])[..., None]
    whole = run_to_end(model.segment(x, {}, NEVER, None))
    original = model.forward

    def small_only(a, *args):  # a GPU that holds tiles of up to 160 pixels
        if max(a.shape[:-1]) > 160:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return original(a, *args)

    monkeypatch.setattr(model, "forward", small_only)
    events = []
    retried = run_to_end(model.segment(x, {}, NEVER, None), events.append)
    assert any(isinstance(e, Notice) and "smaller tiles" in e.message for e in events)
    np.testing.assert_array_equal(retried, whole)


def test_segment_returns_classes_tile_by_tile(model, nuclei):
    img, _ = nuclei
    x = normalize_percentile(img[:200, :232])[..., None]  # sizes the network does not divide
    whole = run_to_end(model.segment(x, {}, NEVER, None))
    events = []
    tiled = run_to_end(model.segment(x, {}, NEVER, 64), events.append)
    assert whole.shape == tiled.shape == (200, 232)
    assert whole.min() >= 0 and whole.max() <= N_CLASSES - 1
    assert np.mean(whole == tiled) > 0.999  # the margin covers the receptive field
    assert sum(isinstance(e, Progress) for e in events) > 1
    previews = [e for e in events if isinstance(e, Preview)]
    assert previews and all(e.data.max() <= N_CLASSES - 1 for e in previews)


def test_segment_stops_at_the_next_tile(model, nuclei):
    img, _ = nuclei
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(model.segment(normalize_percentile(img[:128, :128])[..., None], {}, token, 64))


def test_job_on_a_2d_image_finds_the_classes(model, nuclei):
    img, gt = nuclei
    result = segment(img[256:, 256:], model, axes="YX", tile=128)
    assert result.class_map and result.labels.shape == (256, 256)
    assert set(np.unique(result.labels)) <= set(range(N_CLASSES))
    # the nuclei are mostly found as foreground, after a few training steps
    fg, truth = result.labels > 0, gt[256:, 256:] > 0
    assert np.count_nonzero(fg & truth) / np.count_nonzero(fg | truth) > 0.3
    assert result.n_objects == 1  # classes found besides background
    # measurements: every connected region of a class, with its class
    table = result.table
    assert len(table["label"]) > 1 and set(table["class"]) == {1}
    assert table["area_px"].sum() == np.count_nonzero(result.labels)


def test_z_stack_goes_plane_by_plane_without_offsetting_classes(model, nuclei):
    img, _ = nuclei
    plane = img[:128, :128]
    stack = np.stack([plane, plane[::-1, ::-1].copy(), plane])
    events = []
    result = run_to_end(segment_job(SegmentJob(stack, model, axes="ZYX", tile=64)), events.append)
    assert result.labels.shape == (3, 128, 128)
    assert set(np.unique(result.labels)) <= set(range(N_CLASSES))
    for z in range(3):
        assert 1 in np.unique(result.labels[z])  # plane 2 and 3 keep class 1, not 1 + an offset
    assert np.array_equal(result.labels[0], result.labels[2])
    assert np.mean(result.labels[1] == result.labels[0][::-1, ::-1]) > 0.9  # a flipped plane, nearly the same map
    assert all(e.data.max() <= N_CLASSES - 1 for e in events if isinstance(e, Preview))
    assert not any("objects are not joined" in n for n in result.notes)


def test_stored_name_loads_from_the_store(semantic_folder, tmp_path, nuclei):
    import shutil

    from napari_dlmicro.core.models.paths import store_dir
    from napari_dlmicro.core.models.store import list_models

    shutil.copytree(semantic_folder, store_dir() / "classes")
    assert any(m.name == "classes" and m.kind == "semantic" for m in list_models())
    img, _ = nuclei
    assert segment(img[:64, :64], "classes", axes="YX", device="cpu").labels.max() <= N_CLASSES - 1


def _untrained(folder, ndim: int, channels: int = 1):
    from napari_dlmicro.core.models.folder import save_model_folder
    from napari_dlmicro.core.models.semantic.network import SemanticNet
    from napari_dlmicro.core.nets.unet import UNetConfig

    unet = UNetConfig(ndim=ndim, in_channels=channels, depth=1, filters=4, pool=(2,) * ndim)
    save_model_folder(folder, {"kind": "semantic", "name": folder.name, "unet": unet.to_dict(), "n_classes": 2},
                      SemanticNet(unet, 2))
    return folder


def test_3d_model_on_2d_data_is_explained(tmp_path):
    model = load_segmenter(_untrained(tmp_path / "sem3d", 3))
    assert model.info.spatial_ndim == 3
    with pytest.raises(UserError, match="3D model"):
        segment(np.random.rand(64, 64), model, axes="YX")
    with pytest.raises(UserError, match="3D model"):
        run_to_end(model.segment(np.random.rand(64, 64, 1).astype(np.float32), {}, NEVER))
    labels = segment(np.random.rand(8, 32, 32), model, axes="ZYX").labels
    assert labels.shape == (8, 32, 32) and labels.max() <= 1


def test_channel_mismatch_is_explained(tmp_path):
    model = load_segmenter(_untrained(tmp_path / "sem2c", 2, channels=2))
    with pytest.raises(UserError, match="takes 2 channels"):
        segment(np.random.rand(64, 64, 3), model, axes="YXC")
    with pytest.raises(UserError, match="takes 2 channel"):
        run_to_end(model.segment(np.random.rand(64, 64, 1).astype(np.float32), {}, NEVER))
    assert segment(np.random.rand(64, 64, 2), model, axes="YXC").labels.shape == (64, 64)


def test_cli_segment_with_a_semantic_folder_writes_labels(semantic_folder, nuclei, tmp_path, capsys):
    from napari_dlmicro.cli import main

    img, _ = nuclei
    tifffile.imwrite(tmp_path / "a.tif", img[:128, :160])
    rc = main(["segment", str(tmp_path / "a.tif"), "-m", str(semantic_folder), "-o", str(tmp_path / "out"),
               "--device", "cpu", "--tile", "64"])
    assert rc == 0 and "classes" in capsys.readouterr().out
    labels = tifffile.imread(tmp_path / "out" / "a_labels.tif")
    assert labels.shape == (128, 160) and 0 < labels.max() <= N_CLASSES - 1
    assert (tmp_path / "out" / "a_measurements.csv").read_text().startswith("label")


def test_semantic_training_normalises_as_the_job_does(nuclei):
    """The trainer's normalisation is the job's default one (1st/99.8th percentile over the image)."""
    from napari_dlmicro.core.data.normalize import normalized, percentile_range

    img, _ = nuclei
    lo, hi = percentile_range(img, SegmentJob.norm_low, SegmentJob.norm_high)
    assert np.allclose(normalized(img, 2), (img.astype(np.float32) - lo) / (hi - lo + 1e-20), atol=1e-6)
