"""Blockwise segmentation gives the whole-image labels: every object once, whole, across seams, in 2D and 3D."""
from __future__ import annotations

import dask.array as da
import numpy as np
import torch
import zarr
from blockwise_helpers import BlobSegmenter
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader
from ome_zarr.writer import get_metadata

from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.io.lazy import lazy_from_array
from napari_dlmicro.core.io.ome_zarr import open_image
from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseSegmentJob, blockwise_segment_job
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.jobs.segment_region import segment_region
from napari_dlmicro.core.models.semantic.network import SemanticModel, SemanticNet
from napari_dlmicro.core.models.semantic.segmenter import SemanticSegmenter
from napari_dlmicro.core.nets.unet import UNetConfig
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.events import OutputCreated, Preview, run_to_end

THREADS = ClusterChoice(workers=2, processes=False)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` hold the same objects, whatever their ids."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[a > 0]]), axis=1)
    return len(pairs[0]) == len(np.unique(a[a > 0])) == len(np.unique(b[b > 0]))


def run(job):
    events = []
    result = run_to_end(blockwise_segment_job(job), events.append)
    return result, events


def test_blockwise_labels_match_the_whole_image_in_2d(tmp_path, nuclei_canvas, blobs):
    img = nuclei_canvas[:700, :600]
    image = lazy_from_array(img, "YX", {"Y": 0.5, "X": 0.5})
    result, events = run(BlockwiseSegmentJob(image=image, model=blobs, output=tmp_path / "l.ome.zarr", block=256,
                                             object_size=40, cluster=THREADS, measurements=tmp_path / "m.csv"))
    labels = zarr.open_array(str(tmp_path / "l.ome.zarr" / "0"), mode="r")[:]
    whole = segment(img, blobs, tile=None).labels
    assert result.blocks == 9 and result.conflicts == 0
    assert same_partition(labels, whole)
    assert sorted(np.unique(labels[labels > 0])) == list(range(1, result.n_objects + 1))  # ids 1..N, once each
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(previews) == 18 and all(p.data.shape == tuple(s.stop - s.start for s in p.region) for p in previews)
    created = [i for i, e in enumerate(events) if isinstance(e, OutputCreated)]
    assert len(created) == 1 and events[created[0]].path == result.labels  # once, and before any block
    assert created[0] < events.index(previews[0])
    table = np.genfromtxt(tmp_path / "m.csv", delimiter=",", names=True)
    assert len(table) == result.n_objects and sorted(table["label"]) == list(range(1, result.n_objects + 1))
    assert (tmp_path / "m.parquet").is_file()


def test_blockwise_labels_match_the_whole_image_in_3d(tmp_path, nuclei_canvas):
    model = BlobSegmenter(3)
    vol = np.stack([nuclei_canvas[:200, :200]] * 6 + [nuclei_canvas[8:208, 8:208]] * 6)
    image = lazy_from_array(da.from_array(vol, chunks=(12, 48, 48)), "ZYX")
    result, _ = run(BlockwiseSegmentJob(image=image, model=model, output=tmp_path / "l.ome.zarr", block=96,
                                        object_size=16, cluster=THREADS, measure=False))
    labels = zarr.open_array(str(tmp_path / "l.ome.zarr" / "0"), mode="r")[:]
    assert result.blocks > 4 and same_partition(labels, segment(vol, model, tile=None).labels)


def test_the_label_image_reads_back_with_ome_zarr_and_carries_the_pixel_size(tmp_path, ngff_nuclei, blobs):
    image = open_image(ngff_nuclei)
    result, _ = run(BlockwiseSegmentJob(image=image, model=blobs, output=tmp_path / "l.ome.zarr", block=256,
                                        object_size=40, cluster=THREADS, measure=False))
    nodes = list(Reader(parse_url(str(result.labels)))())
    assert any(isinstance(s, Label) for s in nodes[0].specs)
    assert [d.shape for d in nodes[0].data][0] == (768, 640) and len(nodes[0].data) > 1
    assert nodes[0].metadata["coordinateTransformations"][0][0]["scale"] == [0.5, 0.5]
    assert tuple(zarr.open_array(str(result.labels / "0"), mode="r").chunks) == (128, 128)


def test_labels_go_into_the_input_image_labels_group(ngff_nuclei, blobs):
    image = open_image(ngff_nuclei)
    run(BlockwiseSegmentJob(image=image, model=blobs, labels_into_input=True, block=384, object_size=40,
                            cluster=THREADS, measure=False))
    assert get_metadata(str(ngff_nuclei / "labels"))["labels"] == ["dlmicro"]
    nodes = list(Reader(parse_url(str(ngff_nuclei / "labels" / "dlmicro")))())
    [node] = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert node.data[0].shape == (768, 640)
    image_levels = [lv.shape for lv in image.levels]
    assert [d.shape for d in node.data] == image_levels  # the labels follow the image's pyramid


def test_a_region_is_segmented_from_its_chunks_like_the_whole_image(nuclei_canvas, blobs):
    img = nuclei_canvas[:600, :600]
    whole = segment(img, blobs, tile=None).labels
    region = segment_region(lazy_from_array(img, "YX"), {"Y": slice(200, 400), "X": slice(100, 350)}, blobs,
                            object_size=40)
    assert region.placement == (slice(200, 400), slice(100, 350))
    assert same_partition(region.labels, whole[200:400, 100:350])


def test_a_semantic_class_map_blockwise_is_the_whole_image_class_map(tmp_path, nuclei_canvas):
    img = nuclei_canvas[:300, :260]
    torch.manual_seed(0)  # an untrained U-Net: every output pixel depends on its whole receptive field
    net = SemanticNet(UNetConfig(depth=2, filters=8), 3)
    x = torch.from_numpy(normalize_percentile(img).astype(np.float32))[None, None]
    with torch.no_grad():  # logits centred on this image's features, so that all three classes appear
        net.head.bias.copy_(-(net.head.weight[:, :, 0, 0] @ net.body(x).mean((0, 2, 3))))
        logits = net(x)[0].numpy()
    model = SemanticSegmenter(SemanticModel(net, "three classes"))
    image = lazy_from_array(da.from_array(img, chunks=50), "YX")
    result, _ = run(BlockwiseSegmentJob(image=image, model=model, output=tmp_path / "c.ome.zarr", block=100,
                                        cluster=THREADS, measurements=tmp_path / "c.csv"))
    classes = zarr.open_array(str(tmp_path / "c.ome.zarr" / "0"), mode="r")[:]
    whole = segment(img, model, tile=None).labels
    assert result.blocks == 9 and len(np.unique(whole)) == 3
    differ = np.nonzero(classes != whole)
    assert len(differ[0]) <= 3  # only where two classes tie to rounding (blocks run other convolution kernels)
    assert np.all(np.abs(logits[(classes[differ], *differ)] - logits[(whole[differ], *differ)]) < 1e-4)
    table = np.genfromtxt(tmp_path / "c.csv", delimiter=",", names=True)
    assert dict(zip(table["class"].astype(int), table["pixels"].astype(int))) == {
        c: int((classes == c).sum()) for c in (1, 2)}
