"""The GPU paths, where torch sees a CUDA GPU (skipped elsewhere): train, save, load and predict on cuda.

Every kind that trains a network trains a few steps on the GPU (bf16 autocast)
and predicts there; the GPU's output matches the same model's on the CPU
within bf16's precision, and a blockwise run on local workers that each hold
the model on the GPU gives the labels of the whole-image run.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.data.training_sets import Pair
from napari_dlmicro.core.evaluation.restoration import psnr
from napari_dlmicro.core.evaluation.segmentation import score
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.jobs.train import train_job
from napari_dlmicro.core.models.loader import load_segmenter
from napari_dlmicro.core.models.restoration.network import load_restoration
from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
from napari_dlmicro.core.models.stardist.folder import load_ours
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.models.stardist.train import train_stardist
from napari_dlmicro.core.runtime.events import run_to_end

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA, CPU = torch.device("cuda"), torch.device("cpu")


@pytest.fixture(scope="module")
def stardist_folder(nuclei, tmp_path_factory):
    img, gt = nuclei
    x = normalize_percentile(img)
    folder = tmp_path_factory.mktemp("cuda") / "stardist"
    settings = StarDistTraining(depth=2, filters=16, patch=128, batch=4, lr=3e-3, steps=800, minutes=None,
                                validate_every=200)
    result = run_to_end(train_stardist([x[:, :256]], [gt[:, :256]], [x[:128, 256:]], [gt[:128, 256:]], settings,
                                       device=CUDA, save_to=folder))
    assert next(result.model.net.parameters()).device.type == "cuda"
    return folder


def test_stardist_trains_on_the_gpu_and_segments_as_on_the_cpu(stardist_folder, nuclei):
    img, gt = nuclei
    on_gpu, on_cpu = load_ours(stardist_folder, CUDA), load_ours(stardist_folder, CPU)
    x = normalize_percentile(img)[:, 256:, None].astype(np.float32)
    prob_gpu, prob_cpu = on_gpu.forward(x)[0], on_cpu.forward(x)[0]
    assert np.abs(prob_gpu - prob_cpu).max() < 0.05  # bf16 against fp32
    labels_gpu = segment(img[:, 256:], on_gpu, settings={"views": 1}).labels
    labels_cpu = segment(img[:, 256:], on_cpu, settings={"views": 1}).labels
    assert labels_gpu.max() > 10
    assert score(labels_cpu, labels_gpu, (0.5,))[0].f1 > 0.95
    assert score(gt[:, 256:], labels_gpu, (0.5,))[0].f1 > 0.5


def test_blockwise_workers_on_the_gpu_match_the_whole_image(stardist_folder, nuclei_canvas, tmp_path):
    import dask.array as da
    import zarr

    from napari_dlmicro.core.io.lazy import lazy_from_array
    from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseSegmentJob, blockwise_segment_job
    from napari_dlmicro.core.runtime.cluster import ClusterChoice

    image = lazy_from_array(da.from_array(nuclei_canvas, chunks=256), "YX")
    job = BlockwiseSegmentJob(image=image, model=str(stardist_folder), output=tmp_path / "l.ome.zarr", block=512,
                              measure=False, previews=False, cluster=ClusterChoice(workers=2), device="cuda",
                              settings={"views": 1})
    result = run_to_end(blockwise_segment_job(job))
    blockwise = zarr.open_array(str(result.labels / "0"), mode="r")[:]
    whole = segment(nuclei_canvas, load_ours(stardist_folder, CUDA), settings={"views": 1}).labels
    assert result.n_objects > 50
    assert score(whole, blockwise, (0.5,))[0].f1 > 0.99


@pytest.mark.parametrize("kind", ["n2v", "care"])
def test_restoration_trains_and_predicts_on_the_gpu(kind, tmp_path):
    noisy, clean = noisy_nuclei_arrays()
    x, y = noisy[:256, :256], clean[:256, :256]
    settings = TrainSettings(kind=kind, patch=64, batch_size=8, filters=16, steps_per_epoch=50, epochs=4,
                             device="cuda")
    run_to_end(train_restoration([x], [y] if kind == "care" else None, settings, save_to=tmp_path / kind))
    gpu = load_restoration(tmp_path / kind, device=CUDA)
    cpu = load_restoration(tmp_path / kind, device=CPU)
    out_gpu, out_cpu = denoise(x, gpu), denoise(x, cpu)
    assert out_gpu.shape == x.shape and np.isfinite(out_gpu).all()
    assert psnr(y, out_gpu) > psnr(y, x) + 2.0
    assert np.abs(out_gpu - out_cpu).max() < 0.05 * float(np.ptp(out_cpu))  # bf16 against fp32


def test_semantic_trains_and_predicts_on_the_gpu(nuclei, tmp_path):
    img, gt = nuclei
    classes = (gt > 0).astype(np.uint8)
    settings = {"epochs": 4, "patch": 64, "lr": 1e-2, "val_fraction": 0.3, "depth": 2, "filters": 8}
    run_to_end(train_job("semantic", [Pair("n", img[:256, :256], classes[:256, :256])], settings,
                         out=tmp_path / "sem", device="cuda"))
    model = load_segmenter(tmp_path / "sem", CUDA)
    labels = segment(img[256:, 256:], model).labels
    assert labels.shape == (256, 256) and labels.max() >= 1
