"""``napari-dlmicro segment|denoise IMAGE.ome.zarr`` on a real dask worker process: the whole image's results."""
from __future__ import annotations

import numpy as np
import torch
import zarr
from blockwise_helpers import restoration_folder, write_ngff

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.cli import main
from napari_dlmicro.core.evaluation.seams import border_objects_that_differ
from napari_dlmicro.core.evaluation.segmentation import score
from napari_dlmicro.core.io.ngff_write import COMPLETE, output_state
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.restoration.network import load_restoration

BLOCK = 128


def test_cli_segments_an_ome_zarr_blockwise_like_the_whole_image(tmp_path, trained_stardist, nuclei_canvas, capsys):
    img = nuclei_canvas[64:448, 32:416]
    store = write_ngff(tmp_path / "nuclei.ome.zarr", img, "yx", "0.5", chunks=(64, 64))
    out = tmp_path / "out"
    code = main(["segment", str(store), "-m", str(trained_stardist), "-o", str(out), "--block", str(BLOCK),
                 "--object-size", "24", "--views", "1", "--workers", "1", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    assert "9 block(s)" in capsys.readouterr().out
    labels_store = out / "nuclei_labels.ome.zarr"
    assert output_state(labels_store) == COMPLETE and (out / "nuclei_measurements.csv").is_file()
    labels = zarr.open_array(str(labels_store / "0"), mode="r")[:]
    whole = segment(img, get_segmenter(trained_stardist, torch.device("cpu")), tile=None, settings={"views": 1}).labels
    assert score(labels, whole, (0.5,))[0].f1 >= 0.995
    on_borders, differ = border_objects_that_differ(labels, whole, (BLOCK, BLOCK))
    assert on_borders > 5 and differ == 0
    assert main(["segment", str(store), "-m", str(trained_stardist), "-o", str(out), "--workers", "1"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_denoises_an_ome_zarr_into_an_ngff_image(tmp_path, capsys):
    img = noisy_nuclei_arrays()[0][:128, :160]
    model = restoration_folder(tmp_path / "n2v", "n2v", img)
    store = write_ngff(tmp_path / "noisy.ome.zarr", img, "yx", "0.4", chunks=(64, 64), scale={"y": 0.5, "x": 0.5})
    args = ["denoise", str(store), "-m", str(model), "-o", str(tmp_path / "out"), "--block", "64", "--workers", "1",
            "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr().err
    written = tmp_path / "out" / "noisy_denoised.ome.zarr"
    assert capsys.readouterr().out.strip() == str(written) and output_state(written) == COMPLETE
    whole = denoise(img, load_restoration(model), tile=None, tta=True)
    np.testing.assert_allclose(zarr.open_array(str(written / "0"), mode="r")[:], whole, rtol=0, atol=1e-4)
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
