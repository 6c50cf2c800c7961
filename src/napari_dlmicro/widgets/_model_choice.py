"""Which model the Segmentation dock runs: its kind, its settings, and the cost of running it here."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.catalogue import CATALOGUE
from napari_dlmicro.core.models.folder import read_config
from napari_dlmicro.core.models.stardist.segmenter import stardist_settings
from napari_dlmicro.core.runtime.events import format_eta

CPU_WARN_S = 20.0  # ask before a Cellpose-SAM run expected to take longer than this per plane


def model_kind(ref: str) -> str:
    """The kind of model a catalogue name, weights file or model folder holds."""
    if ref in CATALOGUE:
        return CATALOGUE[ref].kind
    p = Path(ref)
    if p.is_file():
        return "cellpose"
    try:  # our folders name their kind; official StarDist folders do not
        return str(read_config(p).get("kind") or "stardist") if p.is_dir() else "stardist"
    except UserError:
        return "stardist"


def settings_for(kind: str):
    """The user-facing settings (thresholds) of a kind of model."""
    if kind == "cellpose":
        from napari_dlmicro.core.models.cellpose.settings import SETTINGS

        return SETTINGS
    if kind == "semantic":  # a class per pixel: no thresholds to tune
        return ()
    return stardist_settings()


def confirm_cpu_cost(parent, device: str, job) -> bool:
    """Ask before a Cellpose-SAM run that would take long on the CPU; True to go ahead."""
    if model_kind(str(job.model)) != "cellpose" or device not in ("auto", "cpu"):
        return True
    from napari_dlmicro.core.models.cellpose.segmenter import cpu_cost_estimate
    from napari_dlmicro.core.runtime.devices import resolve_device

    if resolve_device(job.device).type != "cpu":
        return True
    shape = np.asarray(job.image).shape
    seconds = cpu_cost_estimate(shape[-2:])
    if seconds < CPU_WARN_S:
        return True
    from qtpy.QtWidgets import QMessageBox

    answer = QMessageBox.question(
        parent, "Cellpose-SAM on the CPU",
        f"Cellpose-SAM has no GPU here: about {format_eta(seconds)} per {shape[-2]}x{shape[-1]} plane on this CPU.\n"
        "StarDist takes about a second. Run Cellpose-SAM anyway?",
    )
    return answer == QMessageBox.StandardButton.Yes

