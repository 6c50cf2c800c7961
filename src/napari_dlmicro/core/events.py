"""What a running job yields, and how its progress is timed.

Every core job is a generator: it yields :class:`Progress`, :class:`Preview`,
:class:`Metrics` and :class:`Notice` events while it works and *returns* its
final result (``StopIteration.value``). The same generator drives the napari
docks (through ``workers.py``) and the command line.
"""
from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Progress:
    """How far a job is: ``done`` of ``total`` steps, with an ETA in seconds."""

    done: int
    total: int
    message: str = ""
    eta_s: float | None = None
    elapsed_s: float = 0.0

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


@dataclass(frozen=True)
class Preview:
    """A finished piece of the result: ``data`` belongs at ``region`` of the output.

    ``region`` is a tuple of slices into the full output array (for a tile), or
    ``None`` when ``data`` is a snapshot of the whole output.
    """

    data: np.ndarray
    region: tuple[slice, ...] | None = None
    kind: str = "labels"


@dataclass(frozen=True)
class Metrics:
    """Numbers measured while training or evaluating (losses, scores)."""

    step: int
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """Something the user should know but that does not stop the job."""

    message: str
    level: str = "info"


Event = Progress | Preview | Metrics | Notice
Job = Generator[Event, None, Any]


class ProgressClock:
    """Makes :class:`Progress` events with an ETA from the rate seen so far."""

    def __init__(self, total: int, message: str = "") -> None:
        self.total = max(int(total), 0)
        self.message = message
        self.start = time.perf_counter()

    def tick(self, done: int, message: str | None = None) -> Progress:
        """The progress event for ``done`` finished steps."""
        elapsed = time.perf_counter() - self.start
        eta = None
        if 0 < done < self.total:
            eta = elapsed / done * (self.total - done)
        elif done >= self.total:
            eta = 0.0
        return Progress(done, self.total, message if message is not None else self.message, eta, elapsed)


def format_eta(seconds: float | None) -> str:
    """A short human ETA: ``'12 s'``, ``'3 min 05 s'``, ``'1 h 02 min'``."""
    if seconds is None:
        return "estimating…"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def run_to_end(job: Job, on_event=None) -> Any:
    """Drive a job generator to its end and return its result.

    ``on_event`` (if given) is called with every event; used by the CLI and
    by the headless Python API.
    """
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if on_event is not None:
            on_event(event)
