"""Why on hover: the explanation of the object under the cursor, once the cursor rests on it.

Each mouse move over the dock's layers only looks up the object under the
cursor (one pixel). When it rests on an object for :data:`REST_MS`, the
explanation (Grad-CAM for the deep classifier, feature contributions for
the fast one) is computed off napari's thread, without an activity bar and
beside the dock's other jobs. One explanation runs at a time: the cursor's
newest object is explained once the running one ends, and an explanation
for an object the cursor has left meanwhile is dropped.
"""
from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QObject, QTimer

from napari_dlmicro.core.runtime.events import Job
from napari_dlmicro.workers import JobHandle, start_job

REST_MS = 150  # the cursor rests this long on an object before it is explained

MakeJob = Callable[[int], Callable | None]  # label -> job factory (token -> Job), None: nothing to explain


class HoverExplainer(QObject):
    """Explains the object under a resting cursor: ``make_job(label)`` builds the job, ``show(result)`` shows
    it; ``track`` keeps the dock's record of its jobs (they are cancelled with the dock)."""

    def __init__(self, make_job: MakeJob, show: Callable, track: Callable[[JobHandle], JobHandle],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.make_job, self.show, self.track = make_job, show, track
        self.label = 0  # the object under the cursor (0: none)
        self.shown = 0  # the object whose explanation is shown
        self.handle: JobHandle | None = None
        self._running = 0  # the object the running job explains
        self.timer = QTimer(self, singleShot=True, interval=REST_MS, timeout=self._rested)

    @property
    def busy(self) -> bool:
        """True while the cursor is resting or an explanation is being computed."""
        return self.timer.isActive() or (self.handle is not None and not self.handle.finished)

    def moved_to(self, label: int) -> None:
        """The cursor is over object ``label`` (0: the background, or off the objects)."""
        if label == self.label:
            return
        self.label = label
        self.timer.stop()
        if label and label != self.shown:
            self.timer.start()

    def forget(self) -> None:
        """Forget what is shown (the classification changed): the object under the cursor is explained again."""
        self.shown = 0
        if self.label:
            self.timer.start()

    def _rested(self) -> None:
        label = self.label
        if not label or label == self.shown:
            return
        if self.handle is not None and not self.handle.finished:
            return  # explained once the running one ends (see _finished)
        make = self.make_job(label)
        if make is None:
            return
        self._running = label

        def job(token) -> Job:
            return (yield from make(token))

        self.handle = self.track(start_job(job, title="Why (hover)", on_result=lambda r: self._result(label, r),
                                           on_finished=self._finished, bar=False))

    def _result(self, label: int, result) -> None:
        if label == self.label:  # still under the cursor: worth showing
            self.shown = label
            self.show(result)

    def _finished(self, cancelled: bool) -> None:
        self.handle = None
        if self.label and self.label not in (self.shown, self._running):
            self._rested()  # the cursor moved on while this one ran
        self._running = 0
