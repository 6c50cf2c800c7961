"""Blockwise runs and bad input: refused clearly, resumed exactly, never marked complete when they are not."""
from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import psutil
import pytest
import zarr

from napari_dlmicro.core.blockwise.state import RunState
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.io.lazy import lazy_from_array
from napari_dlmicro.core.io.ngff_write import COMPLETE, RUNNING, output_state
from napari_dlmicro.core.io.ome_zarr import open_image
from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseSegmentJob, blockwise_segment_job
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice, engine
from napari_dlmicro.core.runtime.events import Progress, run_to_end

THREADS = ClusterChoice(workers=2, processes=False)


def job(image, model, out, **kwargs):
    return BlockwiseSegmentJob(image=image, model=model, output=out, block=kwargs.pop("block", 256), object_size=40,
                               cluster=kwargs.pop("cluster", THREADS), measure=False, **kwargs)


def labels_of(path):
    return zarr.open_array(str(path / "0"), mode="r")[:]


def test_a_cancelled_run_resumes_from_its_blocks_and_gives_the_same_labels(tmp_path, nuclei_canvas, blobs):
    image = lazy_from_array(nuclei_canvas[:768, :768], "YX")
    reference = run_to_end(blockwise_segment_job(job(image, blobs, tmp_path / "ref.ome.zarr")))
    token = CancelToken()
    out = tmp_path / "l.ome.zarr"
    gen = blockwise_segment_job(job(image, blobs, out), token)
    with pytest.raises(Cancelled):
        for ev in gen:
            if isinstance(ev, Progress) and ev.done >= 2:
                token.cancel()
    assert output_state(out) == RUNNING
    done_before = RunState(out / ".dlmicro-run").done_blocks()
    assert 2 <= len(done_before) < 9
    with pytest.raises(UserError, match="already exists"):
        run_to_end(blockwise_segment_job(job(image, blobs, out)))
    blobs.calls = 0
    run_to_end(blockwise_segment_job(job(image, blobs, out, resume=True)))
    assert output_state(out) == COMPLETE and blobs.calls <= 9 - len(done_before) + 2  # finished blocks not redone
    np.testing.assert_array_equal(labels_of(out), labels_of(reference.labels))


def test_a_block_smaller_than_the_halo_is_refused(tmp_path, nuclei_canvas, blobs):
    image = lazy_from_array(nuclei_canvas[:512, :512], "YX")
    with pytest.raises(UserError, match="smaller than the model's halo"):
        run_to_end(blockwise_segment_job(BlockwiseSegmentJob(image=image, model=blobs, output=tmp_path / "l.ome.zarr",
                                                             block=32, object_size=40, cluster=THREADS)))


def test_a_scheduler_that_does_not_answer_is_named(monkeypatch):
    monkeypatch.setattr("napari_dlmicro.core.runtime.cluster.CONNECT_TIMEOUT_S", 1)
    with pytest.raises(UserError, match="no dask scheduler answers at tcp://127.0.0.1:9"), \
            engine(ClusterChoice(scheduler="tcp://127.0.0.1:9")):
        pass


def test_local_workers_that_cannot_start_are_named(monkeypatch):
    def fail(**kwargs):
        raise RuntimeError("Nanny failed to start.")

    monkeypatch.setattr("napari_dlmicro.core.runtime.cluster.LocalCluster", fail)
    with pytest.raises(UserError, match=r"2 local dask worker\(s\) could not start \(Nanny failed"), \
            engine(ClusterChoice(workers=2)):
        pass


def test_a_missing_or_corrupt_chunk_names_its_block_and_the_rest_finishes(tmp_path, ngff_nuclei, blobs):
    os.remove(ngff_nuclei / "s0" / "5" / "4")  # the last corner: the blocks of the first row never read it
    out = tmp_path / "l.ome.zarr"
    with pytest.raises(UserError, match=r"kept failing .*chunk 5/4 of canvas.ome.zarr/s0 is missing"):
        run_to_end(blockwise_segment_job(job(open_image(ngff_nuclei), blobs, out)))
    assert output_state(out) == RUNNING and len(RunState(out / ".dlmicro-run").done_blocks()) > 0
    (ngff_nuclei / "s0" / "5" / "4").write_bytes(b"not a chunk")
    shutil.rmtree(out)
    with pytest.raises(UserError, match="cannot be decoded"):
        run_to_end(blockwise_segment_job(job(open_image(ngff_nuclei), blobs, out)))
    assert output_state(out) == RUNNING


def test_a_full_disk_stops_the_run_and_leaves_it_unfinished(tmp_path, nuclei_canvas, blobs, monkeypatch):
    real = RunState.save_block
    saved = []

    def fill_up(self, block, arrays):
        if len(saved) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(block)
        return real(self, block, arrays)

    monkeypatch.setattr(RunState, "save_block", fill_up)
    out = tmp_path / "l.ome.zarr"
    with pytest.raises(UserError, match="is full"):
        run_to_end(blockwise_segment_job(job(lazy_from_array(nuclei_canvas[:768, :768], "YX"), blobs, out)))
    assert output_state(out) == RUNNING


def test_a_worker_killed_mid_run_changes_nothing(tmp_path, nuclei_canvas, blobs, monkeypatch):
    here = os.path.dirname(__file__)  # worker processes unpickle the test's model from here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    image = lazy_from_array(nuclei_canvas[:768, :768], "YX")
    reference = run_to_end(blockwise_segment_job(job(image, blobs, tmp_path / "ref.ome.zarr")))
    out = tmp_path / "l.ome.zarr"
    killed = []

    def kill_one(ev):
        if isinstance(ev, Progress) and ev.done >= 1 and not killed:
            workers = [p for p in psutil.Process().children(recursive=True)
                       if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]
            if workers:
                workers[0].kill()
                killed.append(workers[0].pid)

    run_to_end(blockwise_segment_job(job(image, blobs, out, cluster=ClusterChoice(workers=2), block=128)), kill_one)
    assert killed and output_state(out) == COMPLETE
    np.testing.assert_array_equal(labels_of(out), labels_of(reference.labels))
