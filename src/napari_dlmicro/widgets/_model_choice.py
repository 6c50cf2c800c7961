"""Asking before a run that would take long on this machine (Cellpose-SAM on a CPU)."""
from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QMessageBox

from napari_dlmicro.core.jobs.segment import SegmentJob
from napari_dlmicro.core.models.cellpose.tiling import cpu_cost_estimate
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import format_eta
from napari_dlmicro.state.segmentation import model_kind

CPU_WARN_S = 20.0  # ask before a Cellpose-SAM run expected to take longer than this per plane


def confirm_cpu_cost(parent, job: SegmentJob) -> bool:
    """Ask before a Cellpose-SAM run that would take long on the CPU; True to go ahead."""
    if model_kind(str(job.model)) != "cellpose" or resolve_device(job.device).type != "cpu":
        return True
    shape = np.asarray(job.image).shape
    seconds = cpu_cost_estimate(shape[-2:])
    if seconds < CPU_WARN_S:
        return True
    answer = QMessageBox.question(
        parent, "Cellpose-SAM on the CPU",
        f"Cellpose-SAM has no GPU here: about {format_eta(seconds)} per {shape[-2]}x{shape[-1]} plane on this CPU.\n"
        "StarDist takes about a second. Run Cellpose-SAM anyway?",
    )
    return answer == QMessageBox.StandardButton.Yes
