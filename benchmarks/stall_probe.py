"""Measure how long napari's event loop stalls, and say where the GUI thread was when it did.

A 10 ms ``QTimer`` heartbeat records the gaps between its ticks. A sampling
thread records the GUI thread's innermost frames of our code (and of napari,
vispy, Qt bindings, matplotlib) every 2 ms, so each long gap can be blamed on
the functions it was spent in (``sample=True``; off by default, because
walking another thread's frames can crash CPython 3.11). Used by the
denoising and training benchmarks.
"""
from __future__ import annotations

import gc
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

INTERESTING = ("napari_dlmicro", "napari", "vispy", "magicgui", "matplotlib", "superqt")


def _where(frame) -> str:
    """The innermost frame inside one of the interesting packages (else the innermost one)."""
    innermost = None
    while frame is not None:
        name = frame.f_code.co_filename
        label = f"{'/'.join(name.split('/')[-2:])}:{frame.f_lineno} {frame.f_code.co_name}"
        innermost = innermost or label
        if any(f"/{pkg}/" in name for pkg in INTERESTING):
            return label
        frame = frame.f_back
    return innermost or "?"


@dataclass
class StallProbe:
    """Heartbeat gaps of the Qt event loop, with samples of where the GUI thread was."""

    interval_ms: int = 10
    sample: bool = False
    gaps: list[tuple[float, float]] = field(default_factory=list)  # (end time, gap in ms minus the interval)
    _samples: list[tuple[float, str]] = field(default_factory=list)
    collections: list[tuple[float, float, int]] = field(default_factory=list)  # garbage collector (start, end, gen)

    def start(self) -> None:
        """Start the heartbeat and the sampler (call on the GUI thread)."""
        from qtpy.QtCore import QTimer

        self._gui = threading.get_ident()
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(self.interval_ms)
        self._timer.timeout.connect(self._beat)
        self._timer.start()
        self._running = True
        gc.callbacks.append(self._gc)
        self._thread = threading.Thread(target=self._sample, daemon=True) if self.sample else None
        if self._thread is not None:
            self._thread.start()

    def reset(self) -> None:
        """Forget the gaps so far (e.g. after a button's own synchronous work)."""
        self.gaps.clear()
        self._samples.clear()
        self.collections.clear()
        self._last = time.perf_counter()

    def stop(self) -> None:
        """Stop the heartbeat and the sampler."""
        self._timer.stop()
        self._running = False
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        if self._thread is not None:
            self._thread.join(timeout=1)

    def _beat(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now, (now - self._last) * 1000 - self.interval_ms))
        self._last = now

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.collections.append((self._gc_start, time.perf_counter(), info["generation"]))

    def _sample(self) -> None:
        while self._running:
            frame = sys._current_frames().get(self._gui)
            if frame is not None:
                self._samples.append((time.perf_counter(), _where(frame)))
            time.sleep(0.002)

    def longest_collection(self) -> tuple[float, int]:
        """The longest garbage-collector pass (ms) and its generation."""
        return max(((e - s) * 1000, g) for s, e, g in self.collections) if self.collections else (0.0, -1)

    @property
    def max_ms(self) -> float:
        """The longest stall so far (0 if none)."""
        return max((g for _, g in self.gaps), default=0.0)

    def worst(self, n: int = 4, t0: float = 0.0) -> list[str]:
        """The ``n`` longest stalls, each with when it ended and where the GUI thread mostly was."""
        out = []
        for end, gap in sorted(self.gaps, key=lambda g: -g[1])[:n]:
            begin = end - (gap + self.interval_ms) / 1000
            spots = Counter(w for t, w in self._samples if begin <= t <= end).most_common(2)
            where = "; ".join(f"{w} ({c})" for w, c in spots) or ("no sample" if self.sample else "")
            gcs = [(e - s) * 1000 for s, e, _ in self.collections if s <= end and e >= begin]
            if gcs:
                where += f" garbage collection {sum(gcs):.0f} ms"
            out.append(f"{gap:.0f} ms at {end - t0:.1f} s: {where}")
        return out


def settle(limit_s: float = 60.0) -> float:
    """Run the event loop until the docks' background warm-up is done (as the seconds before a user's first
    click would), then a moment more for the heap freeze it schedules; returns the seconds waited."""
    from qtpy.QtWidgets import QApplication

    from napari_dlmicro.widgets._warm_up import warming

    t0 = time.perf_counter()
    while warming() and time.perf_counter() - t0 < limit_s:
        QApplication.processEvents()
        time.sleep(0.01)
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    return time.perf_counter() - t0
