"""The Segmentation dock's settings for big images: the cluster, the block size and where the labels go.

A layer too big to hold (an OME-Zarr pyramid, a dask array) is segmented
block by block on dask.distributed, as ``napari-dlmicro segment`` does; its
labels go into an OME-Zarr store that a lazy Labels layer shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.jobs.blockwise_segment import DEFAULT_BLOCK, BlockwiseSegmentJob
from napari_dlmicro.core.runtime.cluster import ClusterChoice

MIN_BLOCK, MAX_BLOCK = 128, 16384


@evented
@dataclass
class BlockwiseSettings:
    """Local workers (0: as many as the machine allows) or a scheduler's address; block size; output folder."""

    workers: int = 0
    scheduler: str = ""
    block_size: int = DEFAULT_BLOCK
    output_folder: str = ""  # empty: next to the input store
    processes: bool = True  # local workers as processes (threads only where a caller asks, e.g. in tests)

    def cluster(self) -> ClusterChoice:
        """The cluster these settings ask for (checked)."""
        address = self.scheduler.strip()
        if address and "://" not in address and ":" not in address:
            raise UserError(f"'{address}' is not a scheduler address",
                            "give it as the scheduler prints it, e.g. tcp://host:8786, or leave it empty")
        return ClusterChoice(workers=self.workers or None, scheduler=address or None, processes=self.processes)

    def output_for(self, image: LazyImage) -> Path:
        """``<folder>/<stem>_labels.ome.zarr``: the chosen folder, else the input store's own folder."""
        if self.output_folder.strip():
            folder = Path(self.output_folder.strip()).expanduser()
        elif image.path is not None:
            folder = Path(image.path).parent
        else:
            raise UserError("this layer has no file on disk to put its labels next to",
                            "choose an output folder under 'Big images'")
        if folder.exists() and not folder.is_dir():
            raise UserError(f"'{folder}' is a file, not a folder", "choose a folder for the labels")
        return folder / f"{image.name}_labels.ome.zarr"

    def build_job(self, image: LazyImage, model: str, prediction: dict[str, Any], resume: bool = False
                  ) -> BlockwiseSegmentJob:
        """The blockwise job for ``image`` with the dock's model settings (``prediction``: SegmentJob's fields)."""
        if not MIN_BLOCK <= int(self.block_size) <= MAX_BLOCK:
            raise UserError(f"block size {self.block_size} is out of range", f"use {MIN_BLOCK} to {MAX_BLOCK} px")
        output = self.output_for(image)
        if output.exists() and not resume:
            raise UserError(f"'{output}' already exists",
                            "remove it, choose another output folder, or Resume to continue that run")
        return BlockwiseSegmentJob(image=image, model=model, output=output, block=int(self.block_size), resume=resume,
                                   cluster=self.cluster(), measurements=output.with_name(
                                       f"{image.name}_measurements.csv"), **prediction)

    def remembered(self) -> dict[str, Any]:
        """What is saved between sessions."""
        return {"workers": self.workers, "scheduler": self.scheduler, "block_size": self.block_size,
                "output_folder": self.output_folder}

    def restore(self, saved: dict[str, Any]) -> None:
        """Put back what :meth:`remembered` saved (a hand-edited file keeps the defaults)."""
        try:
            self.workers = max(0, int(saved.get("workers", self.workers)))
            self.scheduler = str(saved.get("scheduler", self.scheduler))
            self.block_size = int(saved.get("block_size", self.block_size))
            self.output_folder = str(saved.get("output_folder", self.output_folder))
        except (TypeError, ValueError):
            pass
