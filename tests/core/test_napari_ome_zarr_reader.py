"""napari-ome-zarr's own reader opens what we write: a blockwise label image and a denoised image."""
from __future__ import annotations

import numpy as np
import zarr
from blockwise_helpers import restoration_folder, write_ngff
from napari_ome_zarr import napari_get_reader

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.io.ome_zarr import open_image
from napari_dlmicro.core.jobs.blockwise_denoise import denoise_blockwise
from napari_dlmicro.core.jobs.blockwise_segment import segment_blockwise
from napari_dlmicro.core.runtime.cluster import ClusterChoice

THREADS = ClusterChoice(workers=2, processes=False)


def layers_of(path):
    """The layers napari-ome-zarr makes of ``path``.

    For a label image, napari-ome-zarr (0.10) opens the folder two levels up
    as a Zarr group, creating one there when there is none: the tests keep
    their outputs two levels inside their own folder.
    """
    reader = napari_get_reader(str(path))
    assert reader is not None
    return reader(str(path))


def test_napari_ome_zarr_opens_our_label_image(tmp_path, ngff_nuclei, blobs):
    result = segment_blockwise(open_image(ngff_nuclei), blobs, output=tmp_path / "out" / "canvas_labels.ome.zarr",
                               block=256, object_size=40, cluster=THREADS, measure=False)
    [(data, meta, kind)] = layers_of(result.labels)
    assert kind == "labels" and len(data) > 1 and data[0].shape == (768, 640)
    assert meta["scale"] == [0.5, 0.5]
    np.testing.assert_array_equal(np.asarray(data[0]), zarr.open_array(str(result.labels / "0"), mode="r")[:])


def test_napari_ome_zarr_opens_our_denoised_image_and_labels_written_into_it(tmp_path, blobs):
    img = noisy_nuclei_arrays()[0][:256, :320]
    store = write_ngff(tmp_path / "noisy.ome.zarr", img, "yx", "0.5", chunks=(128, 128), scale={"y": 0.5, "x": 0.5})
    out = denoise_blockwise(open_image(store), restoration_folder(tmp_path / "n2v", "n2v", img),
                            tmp_path / "out" / "noisy_denoised.ome.zarr", block=128, tta=False, cluster=THREADS,
                            device="cpu")
    [(data, meta, kind)] = layers_of(out.image)
    assert kind == "image" and data[0].shape == (256, 320) and data[0].dtype == np.float32
    assert meta["scale"] == [0.5, 0.5]
    segment_blockwise(open_image(out.image), blobs, labels_into_input=True, block=128, object_size=40,
                      cluster=THREADS, measure=False)
    kinds = [k for _, _, k in layers_of(out.image)]
    assert kinds == ["image", "labels"]
