"""napari-dlmicro: deep learning for the microscope bench, in napari and headless.

The Python API mirrors the command line::

    from napari_dlmicro import segment
    result = segment(image, "stardist:2D_versatile_fluo", axes="YX")
    result.labels, result.table
"""
from __future__ import annotations

__version__ = "0.1.0"

from .core.models.store import list_models
from .core.segment import SegmentResult, segment, segment_file

__all__ = ["SegmentResult", "__version__", "list_models", "segment", "segment_file"]
