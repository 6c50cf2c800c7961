"""Run GIL-holding library calls out of the way, where a cancel can stop them.

stardist's NMS and label rendering, and scikit-image's region measurements,
hold Python's global lock for hundreds of milliseconds at a time, and on a big
image run for seconds without a point where a job could check its token.

- In a GUI, the worker layer turns :func:`use_process_pool` on for its
  threads; :func:`call` then runs the function in one long-lived helper
  process (``python -m napari_dlmicro.core.runtime.offload_server``, started
  on first use; a plain subprocess, so nothing of the GUI process is forked or
  re-imported), which keeps napari's event loop free. A cancel kills the
  helper (the next call starts a fresh one).
- Headless, :func:`call` runs the function in place; given a token, in a
  helper thread instead, so that a cancel (Ctrl-C on the command line) returns
  at once while the thread finishes in the background and its result is dropped.
"""
from __future__ import annotations

import atexit
import pickle
import select
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..errors import Cancelled
from .cancel import NEVER, CancelToken, call_abandoning

POLL_S = 0.05  # how often a waiting call looks at its token

_local = threading.local()
_lock = threading.Lock()
_server: subprocess.Popen | None = None


def use_process_pool(enabled: bool = True) -> None:
    """Route :func:`call` through the helper process for the calling thread."""
    _local.enabled = enabled


def _start() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen(
            [sys.executable, "-m", "napari_dlmicro.core.runtime.offload_server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        atexit.register(shutdown)
    return _server


def warm_up() -> None:
    """Start the helper process now, so the first job does not wait for it."""
    with _lock:
        _start()


def send(stream, obj: Any) -> None:
    """Write one length-prefixed pickle."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def receive(stream) -> Any:
    """Read one length-prefixed pickle (our own process's, never a user file)."""
    head = _read_exactly(stream, 8)
    (size,) = struct.unpack("<Q", head)
    return pickle.loads(_read_exactly(stream, size))


def _read_exactly(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("helper process closed")
    return data


def call(fn: Callable[..., Any], *args: Any, token: CancelToken = NEVER) -> Any:
    """``fn(*args)``: in the helper process when enabled for this thread, else here.

    ``fn`` must be a module-level function and its arguments picklable. If the
    helper process has died, the call runs here instead. A cancelled ``token``
    raises :class:`Cancelled` within :data:`POLL_S` seconds.
    """
    if getattr(_local, "enabled", False):
        return _call_in_helper(fn, args, token)
    if token is NEVER:
        return fn(*args)
    return _call_in_thread(fn, args, token)


def _call_in_helper(fn: Callable[..., Any], args: tuple, token: CancelToken) -> Any:
    with _lock:
        try:
            server = _start()
            _send_or_cancel(server, (fn.__module__, fn.__qualname__, args), token)
            while not select.select([server.stdout], [], [], POLL_S)[0]:
                if token.cancelled:
                    _kill_locked()
                    raise Cancelled("cancelled by the user")
            ok, value = receive(server.stdout)
        except (OSError, EOFError, pickle.PickleError):
            shutdown_locked()
            return fn(*args)
    if ok:
        return value
    raise value


def _send_or_cancel(server: subprocess.Popen, request: tuple, token: CancelToken) -> None:
    """Send ``request``; a cancel kills the helper meanwhile (a big array waits in the pipe while it starts)."""
    try:
        call_abandoning(send, server.stdin, request, token=token, poll_s=POLL_S)
    except Cancelled:
        _kill_locked()  # the abandoned sender's pipe breaks and it ends
        raise


def _call_in_thread(fn: Callable[..., Any], args: tuple, token: CancelToken) -> Any:
    return call_abandoning(fn, *args, token=token, poll_s=POLL_S)


def _kill_locked() -> None:
    global _server
    if _server is not None:
        _server.kill()
        _server.wait()
        _server = None


def shutdown_locked() -> None:
    """Stop the helper process; the caller holds the lock."""
    global _server
    if _server is not None:
        try:
            _server.stdin.close()
            _server.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            _server.kill()
        _server = None


def shutdown() -> None:
    """Stop the helper process (at exit)."""
    with _lock:
        shutdown_locked()
