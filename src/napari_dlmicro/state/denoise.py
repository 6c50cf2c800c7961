"""The Denoising dock's state: Noise2Void or CARE, its training settings, and the jobs they make."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.registry import Task, get_kind, kinds
from napari_dlmicro.core.models.restoration.settings import TrainSettings
from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.state.job_status import JobStatus
from napari_dlmicro.state.training import gui_threads
from napari_dlmicro.state.values import SettingValues

SECTION = "denoise"
RESTORING_KINDS = tuple(k.name for k in kinds(Task.RESTORE))


@evented
@dataclass
class DenoiseState:
    """Everything the Denoising dock's training form holds, remembered between sessions."""

    kind: str = "n2v"
    axes: str = ""
    name: str = "n2v_model"
    inputs_folder: str = ""  # CARE pairs from two folders instead of layers ("" : layers)
    targets_folder: str = ""
    status: JobStatus = field(default_factory=JobStatus)
    values: SettingValues = field(default_factory=SettingValues)

    def __post_init__(self) -> None:
        self.values.set_specs(get_kind(self.kind).train_settings)

    def choose_kind(self, kind: str) -> None:
        """Train another kind; the settings both kinds have keep their values."""
        if kind not in RESTORING_KINDS:
            raise UserError(f"'{kind}' is not a restoration model", f"use one of {', '.join(RESTORING_KINDS)}")
        kept = self.values.raw()
        self.kind = kind
        self.name = f"{kind}_model"
        self.values.set_specs(get_kind(kind).train_settings, kept)

    @property
    def pair_folders(self) -> tuple[str, str] | None:
        """CARE's (inputs, targets) folders, or None to train on layers."""
        if self.inputs_folder and self.targets_folder:
            return self.inputs_folder, self.targets_folder
        return None

    def set_pair_folders(self, inputs: str | None, targets: str | None) -> None:
        """Train CARE on the files of two folders (matched by name) instead of on layers; None clears."""
        self.inputs_folder, self.targets_folder = (str(inputs), str(targets)) if inputs and targets else ("", "")

    def train_settings(self, axes: str | None = None, max_threads: int | None = None) -> TrainSettings:
        """The checked :class:`TrainSettings` of the form."""
        return get_kind(self.kind).training_settings(self.values.checked(), axes=axes or None,
                                                     max_threads=max_threads)

    def job_args(self) -> dict[str, Any]:
        """Keyword arguments for :func:`...core.jobs.train.train_job` (besides the data), checked."""
        self.values.checked()
        return {"settings": self.values.checked(), "name": self.name.strip() or f"{self.kind}_model",
                "threads": gui_threads()}

    def remember(self) -> None:
        """Save the form for the next session."""
        save_settings(SECTION, {"kind": self.kind, "values": self.values.raw()})

    def restore(self) -> None:
        """Put back the last session's form."""
        saved = load_settings(SECTION)
        kind = saved.get("kind", self.kind)
        if kind in RESTORING_KINDS:
            self.kind = kind
            self.name = f"{kind}_model"
        values = saved.get("values")
        self.values.set_specs(get_kind(self.kind).train_settings, values if isinstance(values, dict) else None)
