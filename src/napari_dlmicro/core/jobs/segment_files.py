"""Segmenting files: labels and measurements written next to each other, one finished file at a time."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_dlmicro.core.io.files import image_name
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.io.tiff_write import write_labels
from napari_dlmicro.core.jobs.segment import SegmentJob, SegmentResult, segment_job
from napari_dlmicro.core.labels.measure import write_csv
from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, Preview, ProgressClock, relay, run_to_end


@dataclass(frozen=True)
class SegmentedFile:
    """One input file done: where its labels and measurements went, and what was found."""

    source: Path
    labels: Path
    measurements: Path
    result: SegmentResult


def segment_file_job(path: str | Path, outdir: str | Path, model: str | Path | Segmenter, token: CancelToken = NEVER,
                     **kwargs: Any) -> Job:
    """Segment one TIFF file; writes ``<stem>_labels.tif`` and ``<stem>_measurements.csv``.

    Returns a :class:`SegmentedFile`. Axes and pixel size come from the file
    unless given. Both outputs are written atomically, after the work is done.
    """
    img = read_image(path)
    axes = kwargs.pop("axes", None) or img.axes
    scale = kwargs.pop("scale", None) or img.scale or None
    result = yield from segment_job(SegmentJob(image=img.data, model=model, axes=axes, scale=scale, **kwargs), token)
    outdir = Path(outdir)
    stem = image_name(path)
    labels_path = write_labels(outdir / f"{stem}_labels.tif", result.labels, scale=scale, axes=result.axes)
    csv_path = write_csv(outdir / f"{stem}_measurements.csv", result.table or {"label": np.zeros(0, int)})
    return SegmentedFile(Path(path), labels_path, csv_path, result)


def segment_files_job(paths: Sequence[str | Path], outdir: str | Path, model: str | Path | Segmenter,
                      token: CancelToken = NEVER, **kwargs: Any) -> Job:
    """Segment many files in turn (:func:`segment_file_job`); returns the :class:`SegmentedFile` list.

    Progress counts over all files; a cancel keeps the files already written.
    Tile previews are not relayed (they belong to no layer).
    """
    clock = ProgressClock(len(paths) * 1000, "segmenting")  # a thousand ticks a file
    done: list[SegmentedFile] = []
    for k, path in enumerate(map(Path, paths)):
        token.check()
        job = segment_file_job(path, outdir, model, token, **kwargs)
        out = yield from relay(_without_previews(job), lambda ev, k=k, p=path: clock.tick(
            k * 1000 + int(ev.fraction * 1000), f"file {k + 1}/{len(paths)} ({p.name}): {ev.message}"))
        done.append(out)
        yield clock.tick((k + 1) * 1000, f"{len(done)} of {len(paths)} file(s) written")
    return done


def _without_previews(job: Job) -> Job:
    while True:
        try:
            ev = next(job)
        except StopIteration as stop:
            return stop.value
        if not isinstance(ev, Preview):
            yield ev


def segment_file(path: str | Path, outdir: str | Path, model: str | Path | Segmenter, **kwargs: Any) -> SegmentedFile:
    """Headless: segment a TIFF file into ``outdir`` (see :func:`segment_file_job`)."""
    return run_to_end(segment_file_job(path, outdir, model, **kwargs))
