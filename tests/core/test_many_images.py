"""Many small images over dask workers: a folder of TIFFs and the fields of a plate, each as if segmented alone."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr
from blockwise_helpers import write_ngff
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader
from ome_zarr.writer import get_metadata, write_plate_metadata, write_well_metadata

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.ome_zarr import open_images
from napari_dlmicro.core.jobs.many_images import segment_many_job
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.jobs.segment_files import segment_file
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.events import run_to_end

THREADS = ClusterChoice(workers=2, processes=False)
CORNERS = [(0, 0), (0, 300), (300, 0), (250, 250), (420, 100)]


@pytest.fixture
def folder(tmp_path, nuclei_canvas):
    """Five small TIFFs cut from the nuclei canvas, one with a pixel size."""
    (tmp_path / "in").mkdir()
    for i, (y, x) in enumerate(CORNERS):
        tifffile.imwrite(tmp_path / "in" / f"crop{i}.tif", nuclei_canvas[y:y + 96, x:x + 112],
                         resolution=(2.0, 2.0) if i == 0 else None)
    return tmp_path / "in"


@pytest.fixture
def plate(tmp_path, nuclei_canvas):
    """An NGFF 0.4 plate: wells A/1 and B/2, two fields each, 96x96 crops of the canvas."""
    path = tmp_path / "plate.ome.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_plate_metadata(root, ["A", "B"], ["1", "2"], ["A/1", "B/2"], fmt=FormatV04())
    crops = iter(CORNERS)
    for well in ("A/1", "B/2"):
        write_well_metadata(root.require_group(well), [{"path": "0"}, {"path": "1"}], fmt=FormatV04())
        for f in ("0", "1"):
            y, x = next(crops)
            write_ngff(path / well / f, nuclei_canvas[y:y + 96, x:x + 96], "yx", scale={"y": 0.5, "x": 0.5})
    return path


def test_a_folder_of_tiffs_gives_each_file_the_outputs_of_segmenting_it_alone(tmp_path, folder, blobs):
    files = sorted(folder.glob("*.tif"))
    done = run_to_end(segment_many_job(files, tmp_path / "out", blobs, THREADS, tile=None))
    assert sorted(d.source for d in done) == sorted(map(str, files))
    for f in files:
        alone = segment_file(f, tmp_path / "alone", blobs, tile=None)
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / f"{f.stem}_labels.tif"),
                                      tifffile.imread(alone.labels))
        assert (tmp_path / "out" / f"{f.stem}_measurements.csv").read_text() == alone.measurements.read_text()
    again = run_to_end(segment_many_job(files, tmp_path / "out", blobs, THREADS, resume=True, tile=None))
    assert all(d.skipped for d in again) and len(again) == len(files)


def test_a_failing_file_is_named_and_the_others_finish(tmp_path, folder, blobs):
    (folder / "broken.tif").write_bytes(b"not a tiff")
    with pytest.raises(UserError, match=r"1 of 6 image\(s\) kept failing \(broken.tif"):
        run_to_end(segment_many_job(sorted(folder.glob("*.tif")), tmp_path / "out", blobs, THREADS))
    assert len(list((tmp_path / "out").glob("*_labels.tif"))) == 5


def test_every_plate_field_gets_its_label_image_and_one_table(tmp_path, plate, blobs):
    fields = open_images(plate)
    store, table = tmp_path / "plate_labels.ome.zarr", tmp_path / "plate_measurements.csv"
    done = run_to_end(segment_many_job(fields, tmp_path, blobs, THREADS, labels_store=store, measurements=table))
    assert sorted(d.source for d in done) == ["A/1/0", "A/1/1", "B/2/0", "B/2/1"]
    assert all(d.n_objects > 0 for d in done)
    for image in fields:
        nodes = list(Reader(parse_url(str(store / image.where)))())
        assert any(isinstance(s, Label) for s in nodes[0].specs)
        assert nodes[0].metadata["coordinateTransformations"][0][0]["scale"] == [0.5, 0.5]
        alone = segment(np.asarray(image.levels[0]), blobs, tile=None).labels
        np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), alone)
    rows = np.genfromtxt(table, delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(rows) == sum(d.n_objects for d in done)
    assert sorted(set(zip(rows["well"], rows["field"]))) == [("A1", 0), ("A1", 1), ("B2", 0), ("B2", 1)]
    with pytest.raises(UserError, match="already exists"):
        run_to_end(segment_many_job(fields, tmp_path, blobs, THREADS, labels_store=store))
    again = run_to_end(segment_many_job(fields, tmp_path, blobs, THREADS, resume=True, labels_store=store))
    assert all(d.skipped for d in again)


def test_plate_labels_can_go_into_each_field(tmp_path, plate, blobs):
    run_to_end(segment_many_job(open_images(plate), tmp_path, blobs, THREADS, into_input=True))
    for well in ("A/1", "B/2"):
        for f in ("0", "1"):
            assert get_metadata(str(plate / well / f / "labels"))["labels"] == ["dlmicro"]
            nodes = list(Reader(parse_url(str(plate / well / f / "labels" / "dlmicro")))())
            assert any(isinstance(s, Label) for s in nodes[0].specs)
