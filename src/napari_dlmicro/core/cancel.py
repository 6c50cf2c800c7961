"""Cancellation that reaches into blocking library calls.

A :class:`CancelToken` is shared between the GUI (or CLI) and a running job.
Generators check it at every event; long library calls that cannot yield
(cellpose's ``eval``, a network forward pass) run through :func:`run_blocking`,
which polls the token and relays events from the blocked call.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

from .errors import Cancelled


class CancelToken:
    """A thread-safe flag: ``cancel()`` from any thread, ``check()`` in the job."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was asked for."""
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


NEVER = CancelToken()  # a token nobody cancels, for headless calls without one


def run_blocking(
    fn: Callable[[Callable[[Any], None]], Any],
    token: CancelToken,
    poll_s: float = 0.1,
) -> Generator[Any, None, Any]:
    """Run ``fn(emit)`` in a helper thread and yield what it emits.

    ``fn`` gets an ``emit`` callback to report events from inside the blocking
    call (from hooks, say); ``emit`` raises :class:`Cancelled` once the token is
    set, which unwinds ``fn`` at its next report. The generator returns ``fn``'s
    return value, or re-raises its exception.
    """
    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}

    def emit(event: Any) -> None:
        token.check()
        events.put(event)

    def target() -> None:
        try:
            outcome["value"] = fn(emit)
        except BaseException as exc:  # re-raised in the job's own thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="dlmicro-blocking", daemon=True)
    thread.start()
    while thread.is_alive() or not events.empty():
        try:
            yield events.get(timeout=poll_s)
        except queue.Empty:
            pass
        if token.cancelled and thread.is_alive():
            # Still waiting for the call to reach its next report.
            continue
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
