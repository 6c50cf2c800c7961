"""What a dock shows about its running job: running or idle, how far, and a line of text."""
from __future__ import annotations

from dataclasses import dataclass

from psygnal import evented

from napari_dlmicro.core.runtime.events import Progress, format_eta


@evented
@dataclass
class JobStatus:
    """The status line and progress bar of a dock, evented (``status.events.text.connect(...)``)."""

    running: bool = False
    fraction: float = 0.0
    text: str = "Idle"

    def start(self, text: str) -> None:
        """A job has started."""
        self.running, self.fraction, self.text = True, 0.0, text

    def progress(self, ev: Progress) -> None:
        """Show a progress event: the fraction, the message and the ETA."""
        self.fraction = ev.fraction
        eta = format_eta(ev.eta_s) if ev.done < ev.total else "done"
        self.text = f"{ev.message} — ETA {eta}" if ev.message else f"ETA {eta}"

    def idle(self, text: str, done: bool = False) -> None:
        """The job ended (or was cancelled): the dock is usable again."""
        self.running, self.text = False, text
        if done:
            self.fraction = 1.0
