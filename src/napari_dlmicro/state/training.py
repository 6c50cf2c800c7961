"""The Training dock's state: the training set, the kind and its settings, and the job they make."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.registry import Kind, Task, TrainsOn, get_kind, kinds
from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.state.job_status import JobStatus
from napari_dlmicro.state.values import SettingValues

SECTION = "training"


def trainable_kinds() -> list[Kind]:
    """The kinds this dock trains: segmentation models learning from annotations."""
    return [k for k in kinds(Task.SEGMENT) if k.trains_on in (TrainsOn.MASKS, TrainsOn.CLASS_MAPS)]


def gui_threads() -> int:
    """Torch threads for a job run from napari: all cores but one, which napari's event loop keeps."""
    return max(1, (os.cpu_count() or 1) - 1)


@evented
@dataclass
class TrainingState:
    """Everything the Training dock's form holds, remembered per kind between sessions."""

    folder: str = ""
    kind: str = "stardist"
    init: str = ""  # continue from this model ("" : a new one)
    name: str = "my-stardist"
    device: str = "auto"
    last_model: str = ""
    status: JobStatus = field(default_factory=JobStatus)
    values: SettingValues = field(default_factory=SettingValues)
    _remembered: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.values.set_specs(get_kind(self.kind).train_settings)

    def choose_kind(self, kind: str) -> None:
        """Train another kind: its settings (remembered ones, else its defaults) replace the form's."""
        self._remembered[self.kind] = self.values.raw()
        self.kind = get_kind(kind).name
        self.values.set_specs(get_kind(kind).train_settings, self._remembered.get(kind))

    def job_args(self, init: str | None = None) -> dict[str, Any]:
        """Keyword arguments for :func:`...core.jobs.train.train_job` (besides the data), checked."""
        if not self.folder.strip():
            raise UserError("no training set folder is chosen", "pick the folder that the Annotation dock fills")
        name = self.name.strip() or "model"
        if Path(name).name != name or name.startswith("."):
            raise UserError(f"'{name}' cannot name a model in the store", "use a plain name without '/'")
        return {"settings": self.values.checked(), "out": store_dir() / name, "name": name,
                "init": (init if init is not None else self.init) or None, "device": self.device,
                "threads": gui_threads()}

    def remember(self) -> None:
        """Save the form for the next session (every kind's settings)."""
        self._remembered[self.kind] = self.values.raw()
        save_settings(SECTION, {"folder": self.folder, "name": self.name, "kind": self.kind, "device": self.device,
                                "by_kind": self._remembered})

    def restore(self) -> None:
        """Put back the last session's form."""
        saved = load_settings(SECTION)
        by_kind = saved.get("by_kind")
        self._remembered = dict(by_kind) if isinstance(by_kind, dict) else {}
        self.folder = str(saved.get("folder", self.folder))
        self.name = str(saved.get("name", self.name))
        self.device = str(saved.get("device", self.device))
        kind = str(saved.get("kind", self.kind))
        try:
            get_kind(kind)
        except UserError:
            kind = "stardist"
        self.kind = kind
        self.values.set_specs(get_kind(kind).train_settings, self._remembered.get(kind))
