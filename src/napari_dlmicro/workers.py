"""The only place that knows about threads: core job generators -> napari workers.

A dock builds a job (a generator function taking a :class:`CancelToken`) and
calls :func:`start_job`. The generator runs in a napari ``GeneratorWorker``;
its events arrive on the GUI thread through ``on_event``; its return value
through ``on_result``. ``JobHandle.cancel()`` sets the token (seen by the core
at its next check, also inside blocking library calls) and asks the worker to
quit at its next yield. Errors become napari notifications with the cause and
the remedy; no traceback reaches the user.
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
from napari_dlmicro.core.runtime.events import (
    Event,
    Job,
    Notice,
    Progress,
    format_eta,
)

log = logging.getLogger(__name__)
_RUNNING: weakref.WeakSet[JobHandle] = weakref.WeakSet()


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

    def __init__(self, worker: GeneratorWorker, token: CancelToken, title: str):
        self.worker = worker
        self.token = token
        self.title = title
        self.cancelled = False
        self.finished = False
        self._bar: napari_progress | None = None

    def cancel(self) -> None:
        """Stop the job at its next check; what it finished is kept."""
        if self.finished:
            return
        self.cancelled = True
        self.token.cancel()
        self.worker.quit()

    def open_bar(self) -> None:
        """Show the job's bar in the activity dock now (building it costs the event loop ~80 ms)."""
        if self._bar is None and not self.finished:
            self._bar = napari_progress(total=1, desc=self.title)

    def _progress(self, ev: Progress) -> None:
        if self.finished:
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

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def start_job(
    make_job: Callable[[CancelToken], Job],
    *,
    title: str,
    on_event: Callable[[Event], None] | None = None,
    on_result: Callable[[Any], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    on_finished: Callable[[bool], None] | None = None,
) -> JobHandle:
    """Run ``make_job(token)`` in a worker thread and wire its events to the GUI.

    ``on_finished(cancelled)`` is always called last, after a result, an
    error or a cancel, so a dock can return to idle.
    """
    token = CancelToken()

    def run() -> Job:
        offload.use_process_pool(True)  # keep GIL-heavy geometry off napari's event loop
        return (yield from make_job(token))

    # errors are reported by our own errored slot below; without this napari re-raises them as tracebacks
    worker: GeneratorWorker = create_worker(run, _start_thread=False, _ignore_errors=True)
    handle = JobHandle(worker, token, title)
    _RUNNING.add(handle)

    def yielded(ev: Event) -> None:
        if isinstance(ev, Progress):
            handle._progress(ev)
        elif isinstance(ev, Notice):
            (show_warning if ev.level == "warning" else show_info)(f"{title}: {ev.message}")
        if on_event is not None:
            on_event(ev)

    def returned(value: Any) -> None:
        if on_result is not None and not handle.cancelled:
            on_result(value)

    def errored(exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            handle.cancelled = True
            return
        log.error("%s failed:\n%s", title, "".join(traceback.format_exception(exc)))
        message = describe_error(exc)
        show_error(f"{title}: {message}")
        if on_error is not None:
            on_error(message)

    def finished() -> None:
        handle.finished = True
        handle._close_bar()
        _RUNNING.discard(handle)
        if handle.cancelled:
            show_info(f"{title}: cancelled")
        if on_finished is not None:
            on_finished(handle.cancelled)

    worker.yielded.connect(yielded)
    worker.returned.connect(returned)
    worker.errored.connect(errored)
    worker.finished.connect(finished)
    handle.open_bar()  # at the click, not at the first event: the job then never waits on it
    worker.start()
    return handle


def cancel_all() -> None:
    """Cancel every running job (the viewer is closing)."""
    for handle in list(_RUNNING):
        handle.cancel()
