"""The only place that knows about threads: core job generators -> napari workers.

A dock builds a job (a generator function taking a :class:`CancelToken`) and
calls :func:`start_job`. The generator runs in a napari ``GeneratorWorker``;
its events arrive on the GUI thread through ``on_event``; its return value
through ``on_result``. Errors become napari notifications with the cause and
the remedy; no traceback reaches the user.

Two ways to end a job early:

- :meth:`JobHandle.cancel` sets the token's cancel flag. The dock is told at
  once (``on_finished(True)``) and is idle and usable: the job stops at its
  next check, within a second, in the background, and nothing it yields after
  that reaches the dock. A result it still returns (a training run returns the
  best model it saved) arrives through ``on_result`` later; a dock that
  started another job meanwhile ignores it.
- :meth:`JobHandle.stop` asks a training job to finish its step, keep the best,
  tune and save; the dock waits for ``on_result`` and ``on_finished(False)``.
"""
from __future__ import annotations

import logging
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress as napari_progress
from napari.utils.notifications import show_error, show_info, show_warning

from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Event, Job, Level, Notice, Progress, format_eta

log = logging.getLogger(__name__)
RUNNING: weakref.WeakSet[JobHandle] = weakref.WeakSet()


def _deliver(callback: Callable[..., None] | None, *args: Any) -> None:
    """Call a dock's slot; a dock closed meanwhile (its Qt objects deleted) is skipped, not an error."""
    if callback is None:
        return
    try:
        callback(*args)
    except RuntimeError as exc:
        if "has been deleted" not in str(exc):
            raise
        log.debug("a job's %s arrived after its dock closed", getattr(callback, "__name__", "callback"))


def describe_error(exc: BaseException) -> str:
    """The one-line message a user sees for ``exc``."""
    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "ran out of memory. Use a smaller tile size, a smaller region, or close other programs."
    return (f"unexpected {type(exc).__name__}: {exc}. Your layers are untouched; "
            "the details are in the log (napari's console) — please report them.")


class JobHandle:
    """A running job: its worker, its cancel token and its activity-dock bar."""

    def __init__(self, worker: GeneratorWorker, token: CancelToken, title: str,
                 on_finished: Callable[[bool], None] | None = None, bar: bool = True) -> None:
        self.worker = worker
        self.bar = bar  # whether the job shows a bar in napari's activity dock
        self.token = token
        self.title = title
        self.cancelled = False  # cancel() was called, or the job ended by a cancel
        self.finished = False  # the dock has been told the job ended
        self.thread_done = False  # the worker thread has really ended
        self._on_finished = on_finished
        self._bar: napari_progress | None = None

    def cancel(self) -> None:
        """Stop the job now: the dock is idle at once, the job ends at its next check; finished work is kept."""
        if self.finished:
            return
        self.cancelled = True
        self.token.cancel()
        self._finish()
        show_info(f"{self.title}: cancelled")

    def stop(self) -> None:
        """Ask a training job to finish its step, keep the best, tune and save (the dock waits for it)."""
        if not self.finished:
            self.token.stop()

    def open_bar(self) -> None:
        """Show the job's bar in the activity dock now (building it costs the event loop ~80 ms)."""
        if self.bar and self._bar is None and not self.finished:
            self._bar = napari_progress(total=1, desc=self.title)

    def _progress(self, ev: Progress) -> None:
        if self.finished or not self.bar:
            return
        self.open_bar()
        bar = self._bar
        bar.total = max(ev.total, 1)
        bar.n = min(ev.done, bar.total)
        eta = format_eta(ev.eta_s) if ev.done < ev.total else "done"
        bar.set_description(f"{self.title}: {ev.message} (ETA {eta})" if ev.message else self.title)
        # set_description can process events, and the job may have finished (closing the bar) meanwhile.
        if self._bar is bar:
            bar.refresh()

    def _finish(self) -> None:
        """Tell the dock, once, that the job is over (for it: a cancel ends it at the click)."""
        if self.finished:
            return
        self.finished = True
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        _deliver(self._on_finished, self.cancelled)


def start_job(
    make_job: Callable[[CancelToken], Job],
    *,
    title: str,
    on_event: Callable[[Event], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    on_finished: Callable[[bool], None] | None = None,
    bar: bool = True,
) -> JobHandle:
    """Run ``make_job(token)`` in a worker thread and wire its events to the GUI.

    ``on_finished(cancelled)`` is called exactly once: when the job ends, or
    at once when it is cancelled. ``on_result`` gets the job's return value,
    also after a cancel if the job still returns one. ``bar=False`` keeps the
    job out of napari's activity dock: for short jobs a dock starts at every
    click, whose bar would cost the event loop more (opening, updating and
    closing it: 80-400 ms) than the job takes, and which the dock's own status
    line already shows.
    """
    token = CancelToken()

    def run() -> Job:
        offload.use_process_pool(True)  # keep GIL-heavy geometry off napari's event loop
        return (yield from make_job(token))

    # errors are reported by our own errored slot below; without this napari re-raises them as tracebacks
    worker: GeneratorWorker = create_worker(run, _start_thread=False, _ignore_errors=True)
    handle = JobHandle(worker, token, title, on_finished, bar)
    RUNNING.add(handle)

    def yielded(ev: Event) -> None:
        if handle.finished:
            return  # a cancelled job's last events: the dock has moved on
        # The dock first: updating the activity bar can process queued signals (the job's result among
        # them), and an event delivered after the result would overwrite the dock's outcome.
        _deliver(on_event, ev)
        if isinstance(ev, Progress):
            handle._progress(ev)
        elif isinstance(ev, Notice):
            (show_warning if ev.level is Level.WARNING else show_info)(f"{title}: {ev.message}")

    def returned(value: Any) -> None:
        _deliver(on_result, value)

    def errored(exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            handle.cancelled = True
            return
        if isinstance(exc, UserError):  # bad input, said in the dock: its traceback would only alarm
            log.info("%s: %s", title, exc)
        else:
            log.error("%s failed:\n%s", title, "".join(traceback.format_exception(exc)))
        if handle.cancelled:
            return  # the user had moved on: the log keeps it
        message = describe_error(exc)
        show_error(f"{title}: {message}")
        _deliver(on_error, message)

    def finished() -> None:
        handle.thread_done = True
        RUNNING.discard(handle)
        handle._finish()

    worker.yielded.connect(yielded)
    worker.returned.connect(returned)
    worker.errored.connect(errored)
    worker.finished.connect(finished)
    handle.open_bar()  # at the click, not at the first event: the job then never waits on it
    worker.start()
    return handle
