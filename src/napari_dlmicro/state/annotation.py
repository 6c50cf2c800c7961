"""The Annotation dock's remembered settings: the training set folder, the size filter and the model."""
from __future__ import annotations

from dataclasses import dataclass, field

from psygnal import evented

from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.state.job_status import JobStatus

SECTION = "annotation"


@evented
@dataclass
class AnnotationState:
    """What the Annotation dock remembers between sessions, and its pre-annotation job's status."""

    folder: str = ""
    min_size: int = 20
    model: str = ""
    status: JobStatus = field(default_factory=JobStatus)

    def remember(self) -> None:
        """Save the form for the next session."""
        save_settings(SECTION, {"folder": self.folder, "min_size": self.min_size, "model": self.model})

    def restore(self) -> None:
        """Put back the last session's form."""
        saved = load_settings(SECTION)
        self.folder = str(saved.get("folder", self.folder))
        try:
            self.min_size = int(saved.get("min_size", self.min_size))
        except (TypeError, ValueError):
            pass
        self.model = str(saved.get("model", self.model))
