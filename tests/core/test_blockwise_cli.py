"""``napari-dlmicro segment IMAGE.ome.zarr``: a StarDist model blockwise, the same objects as the whole image."""
from __future__ import annotations

import torch
import zarr
from blockwise_helpers import write_ngff

from napari_dlmicro.cli import main
from napari_dlmicro.core.evaluation.segmentation import score
from napari_dlmicro.core.io.ngff_write import COMPLETE, output_state
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.cache import get_segmenter


def test_cli_segments_an_ome_zarr_blockwise_like_the_whole_image(tmp_path, trained_stardist, nuclei_canvas, capsys):
    img = nuclei_canvas[:640, :640]
    store = write_ngff(tmp_path / "nuclei.ome.zarr", img, "yx", "0.5", chunks=(128, 128))
    out = tmp_path / "out"
    code = main(["segment", str(store), "-m", str(trained_stardist), "-o", str(out), "--block", "256",
                 "--workers", "1", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    labels_store = out / "nuclei_labels.ome.zarr"
    assert output_state(labels_store) == COMPLETE and (out / "nuclei_measurements.csv").is_file()
    labels = zarr.open_array(str(labels_store / "0"), mode="r")[:]
    whole = segment(img, get_segmenter(trained_stardist, torch.device("cpu")), tile=None).labels
    assert score(labels, whole, (0.5,))[0].f1 >= 0.995
    assert main(["segment", str(store), "-m", str(trained_stardist), "-o", str(out), "--workers", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
