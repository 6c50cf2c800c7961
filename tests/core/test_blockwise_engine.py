"""The engine choice reaches blockwise segmentation: each dask worker runs the network on it, with its own session."""
from __future__ import annotations

import dask.array as da
import numpy as np
import zarr

from napari_dlmicro.core.io.lazy import lazy_from_array
from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseSegmentJob, blockwise_segment_job
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.engines import runner
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.events import run_to_end


def test_blockwise_labels_on_onnx_runtime_equal_the_in_memory_labels(tmp_path, blob_stardist_2d, monkeypatch):
    model, blobs = blob_stardist_2d
    image = np.tile(blobs, (3, 3))  # 192x192, 27 objects; four blocks of 128
    used: list[str] = []
    real = runner.backend

    def recording(engine, path, threads):  # the workers are threads here: the same module serves them
        used.append(engine)
        return real(engine, path, threads)

    monkeypatch.setattr(runner, "backend", recording)
    lazy = lazy_from_array(da.from_array(image, chunks=64), "YX")
    job = BlockwiseSegmentJob(image=lazy, model=model, output=tmp_path / "l.ome.zarr", block=128,
                              object_size=16, engine="onnxruntime", measure=False,
                              cluster=ClusterChoice(workers=1, processes=False))
    result = run_to_end(blockwise_segment_job(job))
    labels = zarr.open_array(str(tmp_path / "l.ome.zarr" / "0"), mode="r")[:]
    assert result.blocks == 4 and used and set(used) == {"onnxruntime"}
    whole = segment(image, model, tile=None, engine="torch", measure=False).labels
    assert result.n_objects == 27 and np.array_equal(labels > 0, whole > 0)
    pairs = np.unique(np.stack([labels[labels > 0], whole[labels > 0]]), axis=1)
    assert len(pairs[0]) == len(np.unique(whole[whole > 0])) == 27  # the same objects, pixel for pixel (ids: by block)
