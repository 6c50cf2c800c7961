"""napari-dlmicro: deep learning for the microscope bench, in napari and headless.

The Python API mirrors the command line::

    from napari_dlmicro import segment, denoise, train
    result = segment(image, "stardist:2D_versatile_fluo", axes="YX")
    result.labels, result.table
    model = train("stardist", "training_set/", out="my-model", settings={"minutes": 5}).model
"""
from __future__ import annotations

from napari_dlmicro.core.jobs.denoise import denoise
from napari_dlmicro.core.jobs.evaluate import evaluate_files
from napari_dlmicro.core.jobs.segment import SegmentResult, segment
from napari_dlmicro.core.jobs.segment_files import segment_file
from napari_dlmicro.core.jobs.train import train_from_folders as train
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.core.version import __version__

__all__ = ["SegmentResult", "__version__", "denoise", "evaluate_files", "list_models", "segment", "segment_file",
           "train"]
