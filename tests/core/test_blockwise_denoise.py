"""Blockwise denoising of an OME-Zarr gives the whole-image result, as an NGFF image, and resumes after a stop."""
from __future__ import annotations

import re

import numpy as np
import pytest
import zarr
from blockwise_helpers import restoration_folder, write_ngff
from ome_zarr.io import parse_url
from ome_zarr.reader import Label, Reader

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.blockwise.state import RunState
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.io.ngff_write import COMPLETE, RUNNING, output_state
from napari_dlmicro.core.io.ome_zarr import open_image
from napari_dlmicro.core.jobs.blockwise_denoise import BlockwiseDenoiseJob, blockwise_denoise_job
from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.models.restoration.network import load_restoration
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.events import Notice, Progress, run_to_end

THREADS = ClusterChoice(workers=2, processes=False)


@pytest.fixture(scope="module")
def noisy():
    noisy, clean = noisy_nuclei_arrays()
    return noisy[:200, :264].copy(), float(clean.max())


def level0(path):
    return zarr.open_array(str(path / "0"), mode="r")[:]


def test_blockwise_n2v_equals_the_whole_image_and_keeps_the_pixel_size(tmp_path, noisy):
    img = noisy[0][:150, :200]
    model = restoration_folder(tmp_path / "n2v", "n2v", img)
    store = write_ngff(tmp_path / "noisy.ome.zarr", img, "yx", "0.5", chunks=(50, 50), scale={"y": 0.5, "x": 0.25})
    result = run_to_end(blockwise_denoise_job(BlockwiseDenoiseJob(
        image=open_image(store), model=model, output=tmp_path / "noisy_denoised.ome.zarr", block=50,
        cluster=THREADS, device="cpu")))
    whole = denoise(img, load_restoration(model), tile=None, tta=True)  # N2V restores with test-time views
    out = level0(result.image)
    assert result.blocks == 12 and out.dtype == np.float32
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-4)
    assert output_state(result.image) == COMPLETE
    [node] = list(Reader(parse_url(str(result.image)))())
    assert not any(isinstance(s, Label) for s in node.specs)
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == [0.5, 0.25]
    again = open_image(result.image)
    assert again.scale == {"Y": 0.5, "X": 0.25} and again.ngff_version == "0.5" and again.name == "noisy_denoised"


def test_a_stopped_care_run_resumes_and_gives_the_whole_image_result(tmp_path, noisy):
    img, top = noisy
    frames = np.stack([img, img[::-1] * 0.5 + 3.0])  # two time points with their own intensity ranges
    model = restoration_folder(tmp_path / "care", "care", img, target_high=top)
    image = open_image(write_ngff(tmp_path / "movie.ome.zarr", frames, "tyx", "0.4", chunks=(1, 64, 64)))
    out = tmp_path / "movie_denoised.ome.zarr"

    def job(**kwargs):
        return BlockwiseDenoiseJob(image=image, model=model, output=out, block=64, device="cpu",
                                   cluster=ClusterChoice(workers=1, processes=False), **kwargs)

    token = CancelToken()
    with pytest.raises(Cancelled):
        for ev in blockwise_denoise_job(job(), token):
            if isinstance(ev, Progress) and ev.done >= 2:
                token.cancel()
    assert output_state(out) == RUNNING
    done_before = RunState(out / ".dlmicro-run").done_blocks()
    assert 2 <= len(done_before) < 40
    with pytest.raises(UserError, match="already exists"):
        run_to_end(blockwise_denoise_job(job()))
    events = []
    run_to_end(blockwise_denoise_job(job(resume=True)), events.append)
    assert output_state(out) == COMPLETE
    # blocks still in flight at the cancel may finish while the cluster closes behind it: they count as done
    said = " ".join(e.message for e in events if isinstance(e, Notice))
    resumed = int(re.search(r"resuming: (\d+) of 40 block\(s\)", said).group(1))
    assert len(done_before) <= resumed < 40
    whole = denoise(frames, load_restoration(model), axes="TYX", tile=None)  # CARE: each frame its own range
    np.testing.assert_allclose(level0(out), whole, rtol=0, atol=1e-4)
