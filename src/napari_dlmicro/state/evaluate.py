"""The Evaluate dock's state: the IoU thresholds it scores at."""
from __future__ import annotations

from dataclasses import dataclass, field

from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.segmentation import DEFAULT_IOUS
from napari_dlmicro.state.job_status import JobStatus


def parse_ious(text: str) -> tuple[float, ...]:
    """``"0.5 0.7, 0.9"`` -> (0.5, 0.7, 0.9); numbers strictly between 0 and 1, else a clear error."""
    try:
        ious = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise UserError(f"IoU thresholds must be numbers, not '{text}'", "type them like 0.5 0.7 0.9") from None
    if not ious or any(not 0.0 < t < 1.0 for t in ious):
        raise UserError(f"IoU thresholds {', '.join(map(str, ious)) or '(none)'} must lie between 0 and 1",
                        "use values such as 0.5 0.7 0.9")
    return ious


@evented
@dataclass
class EvaluateState:
    """The thresholds as typed, and the job's status."""

    ious: str = " ".join(f"{t:g}" for t in DEFAULT_IOUS)
    status: JobStatus = field(default_factory=JobStatus)

    def thresholds(self) -> tuple[float, ...]:
        """The thresholds, checked."""
        return parse_ious(self.ious)
