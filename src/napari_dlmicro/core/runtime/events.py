"""What a running job yields, and how its progress is timed.

Every core job is a generator: it yields :class:`Progress`, :class:`Preview`,
:class:`Metrics` and :class:`Notice` events (and a blockwise job, once,
:class:`OutputCreated`) while it works and *returns* its
final result (``StopIteration.value``). The same generator drives the napari
docks (through ``workers.py``) and the command line.

The protocol is typed: a preview always says where it belongs with a tuple of
slices into the job's output, its kind is a :class:`PreviewKind`, a notice's
level a :class:`Level`, and metric names are the constants of :class:`Metric`,
which trainers emit and the docks' plots draw.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np


class Level(str, Enum):
    """How loudly a :class:`Notice` is shown."""

    INFO = "info"
    WARNING = "warning"


class PreviewKind(str, Enum):
    """What a :class:`Preview` holds."""

    LABELS = "labels"  # object ids (or class ids of a class map)
    IMAGE = "image"  # a restored or denoised image


class Metric:
    """Names of the numbers trainers report in :class:`Metrics`, shared with the docks' plots."""

    STEP = "step"
    EPOCH = "epoch"
    SECONDS = "seconds"
    LR = "lr"
    STEP_LOSS = "step_loss"  # the loss of the last training step (noisy; not plotted)
    TRAIN_LOSS = "train_loss"  # mean training loss since the last validation
    VAL_LOSS = "val_loss"
    F1 = "f1"  # object F1 at IoU 0.5
    AP = "ap"  # StarDist's accuracy at IoU 0.5
    F1_07 = "f1_07"  # object F1 at IoU 0.7
    F1_TUNED = "f1_optimized"  # F1 at IoU 0.5 after the thresholds were tuned
    ACCURACY = "accuracy"
    MEAN_IOU = "mean_iou"
    PROB_THRESH = "prob_thresh"
    NMS_THRESH = "nms_thresh"


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
        """``done / total``, within 0..1."""
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


@dataclass(frozen=True)
class Preview:
    """A finished piece of the result: ``data`` belongs at ``region`` of the job's output.

    ``region`` is a tuple of slices, one per axis of the output, and ``data``
    has the shape those slices select (a snapshot of a whole output covers it
    with ``slice(0, n)`` on every axis).
    """

    data: np.ndarray
    region: tuple[slice, ...]
    kind: PreviewKind = PreviewKind.LABELS

    def __post_init__(self) -> None:
        if not isinstance(self.region, tuple) or not all(isinstance(s, slice) for s in self.region):
            raise TypeError(f"Preview.region must be a tuple of slices, got {self.region!r}")


def whole(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The region that covers an output of ``shape``."""
    return tuple(slice(0, n) for n in shape)


@dataclass(frozen=True)
class Metrics:
    """Numbers measured while training or evaluating, keyed by :class:`Metric` names."""

    step: int
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """Something the user should know but that does not stop the job."""

    message: str
    level: Level = Level.INFO

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", Level(self.level))  # "warning" reads as Level.WARNING


@dataclass(frozen=True)
class OutputCreated:
    """The job's output store exists, still empty: ``path`` (an NGFF image group) fills in as its Previews come.

    Sent once, before the first block, so that a viewer can show the output
    while the job is still starting its workers rather than when a block lands.
    """

    path: Path


Event = Progress | Preview | Metrics | Notice | OutputCreated
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


def run_to_end(job: Job, on_event: Callable[[Event], None] | None = None) -> Any:
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


def relay(job: Job, on_progress: Callable[[Progress], Event | None]) -> Job:
    """Re-yield ``job``'s events, passing its :class:`Progress` through ``on_progress``; returns its result.

    A job that runs another as one part of its own work uses this to rescale
    the inner progress (``on_progress`` returns the outer event, or None to drop it).
    """
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Progress):
            event = on_progress(event)
            if event is None:
                continue
        yield event
