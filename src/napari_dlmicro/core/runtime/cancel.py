"""Stopping a job: *cancel* (stop now, keep what is done) and *stop* (finish the unit, keep the best).

A :class:`CancelToken` is shared between the GUI (or CLI) and a running job.

- ``cancel()`` asks the job to end as soon as it can: every loop over tiles,
  views, planes, frames, blocks, files and training steps calls ``check()``,
  which raises :class:`Cancelled`; long library calls that cannot yield run
  through :func:`run_blocking` or :func:`cancellable_forward`, which notice the
  token from inside. What was finished is kept (tiles already shown, files
  already written, the best checkpoint already saved).
- ``stop()`` asks a training job to end gracefully: it finishes the step it is
  in, validates, keeps its best weights, tunes what it tunes (StarDist's
  thresholds), saves and returns its result. Jobs without such an ending treat
  a stop like a cancel.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

from ..errors import Cancelled


class CancelToken:
    """A thread-safe pair of flags: ``cancel()`` and ``stop()`` from any thread, checked in the job."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._stop = threading.Event()

    def cancel(self) -> None:
        """End the job as soon as possible, keeping what is finished."""
        self._cancel.set()
        self._stop.set()

    def stop(self) -> None:
        """End a training job after its current step: validate, keep the best, save."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called."""
        return self._cancel.is_set()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` or ``cancel()`` was called."""
        return self._stop.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was asked for."""
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking at once on cancel; True if cancelled."""
        return self._cancel.wait(seconds)


class _Never(CancelToken):
    """A token nobody cancels, for headless calls without one."""

    def cancel(self) -> None:  # pragma: no cover - a shared default must never be set
        raise RuntimeError("NEVER is shared by every headless call and cannot be cancelled; make a CancelToken")

    def stop(self) -> None:  # pragma: no cover
        raise RuntimeError("NEVER cannot be stopped; make a CancelToken")


NEVER: CancelToken = _Never()


def call_abandoning(fn: Callable[..., Any], *args: Any, token: CancelToken, poll_s: float = 0.02) -> Any:
    """``fn(*args)`` in a helper thread; a cancel raises :class:`Cancelled` here within ``poll_s``.

    For one call that a cancel can only stop at its next check (a network's
    layer on a huge tile takes seconds on a CPU): the caller goes on at once,
    and the helper thread ends at that check in the background (its result is
    dropped). With :data:`NEVER` it is a plain call.
    """
    if token is NEVER:
        return fn(*args)
    outcome: dict[str, Any] = {}
    finished = threading.Event()
    inherited = list(_thread_checks())  # the helper's layers check what the caller's would

    def target() -> None:
        _thread_checks().extend(inherited)
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=target, name="dlmicro-call", daemon=True).start()
    while not finished.wait(poll_s):
        token.check()
    try:
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
    finally:
        # the error's traceback holds the helper's frame, whose closure holds ``outcome``: without this the
        # cycle keeps every frame of ``fn`` (a whole network for a load) until the garbage collector runs
        outcome.clear()


def run_blocking(
    fn: Callable[[Callable[[Any], None]], Any],
    token: CancelToken,
    poll_s: float = 0.05,
) -> Generator[Any, None, Any]:
    """Run ``fn(emit)`` in a helper thread and yield what it emits; returns its value.

    ``fn`` gets an ``emit`` callback to report events from inside the blocking
    call; ``emit`` raises :class:`Cancelled` once the token is cancelled, which
    unwinds ``fn`` at its next report. The caller does not wait for that: on
    cancel this generator raises :class:`Cancelled` within ``poll_s`` and the
    helper thread finishes (and its result is dropped) in the background. A
    daemon thread, so it never holds up the end of the process.
    """
    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def emit(event: Any) -> None:
        token.check()
        events.put(event)

    def target() -> None:
        try:
            outcome["value"] = fn(emit)
        except BaseException as exc:  # re-raised in the job's own thread below
            outcome["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=target, name="dlmicro-blocking", daemon=True)
    thread.start()
    while not finished.is_set() or not events.empty():
        with contextlib.suppress(queue.Empty):
            yield events.get(timeout=poll_s)
        token.check()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@contextlib.contextmanager
def cancellable_forward(module: Any, token: CancelToken, also: Callable[[], None] | None = None,
                        backward: bool = True) -> Iterator[None]:
    """Check ``token`` before every sub-module of a torch network runs, forward and backward.

    A forward pass over a big tile (or a Cellpose-SAM ViT on a CPU, seconds a
    tile) is one call; with these hooks a cancel unwinds it at the next layer,
    so the work between two checks is one layer's, not one network's.
    ``also`` is called at each check too (a training step's time budget).
    ``backward=False`` leaves the backward pass unhooked (torch forbids those
    hooks around in-place layers such as torchvision's ReLUs).
    """
    if token is NEVER and also is None:  # nothing can stop it: no hooks to pay for
        yield
        return

    def before(*_: Any) -> None:
        # The checks of the thread that runs the layer: a network shared by two jobs (one cancelled and
        # winding down behind call_abandoning, one just started) must stop only the cancelled one.
        for tok, extra in tuple(_thread_checks()):
            tok.check()
            if extra is not None:
                extra()

    entry = (token, also)
    _thread_checks().append(entry)
    handles = []
    for child in module.modules():
        if child is module or not list(child.children()):
            handles.append(child.register_forward_pre_hook(before))
            if backward and hasattr(child, "register_full_backward_pre_hook") and any(
                    p.requires_grad for p in child.parameters(recurse=False)):
                handles.append(child.register_full_backward_pre_hook(before))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        _thread_checks().remove(entry)


_CHECKS = threading.local()


def _thread_checks() -> list[tuple[CancelToken, Callable[[], None] | None]]:
    """The (token, also) pairs that layers run by this thread check (see :func:`cancellable_forward`)."""
    if not hasattr(_CHECKS, "items"):
        _CHECKS.items = []
    return _CHECKS.items
