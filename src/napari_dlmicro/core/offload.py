"""Run GIL-holding library calls in a helper process while a GUI is open.

stardist's NMS and label rendering, and scikit-image's region measurements,
hold Python's global lock for hundreds of milliseconds at a time. In a worker
thread that freezes napari's event loop. The worker layer turns
:func:`use_process_pool` on for its threads; :func:`call` then runs the
function in one long-lived helper process (``python -m
napari_dlmicro.core.offload_server``, started on first use; a plain
subprocess, so nothing of the GUI process is forked or re-imported). Headless
callers are unaffected: without the flag, :func:`call` runs in place.
"""
from __future__ import annotations

import atexit
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

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
            [sys.executable, "-m", "napari_dlmicro.core.offload_server"],
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
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("helper process closed")
    (size,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(size))


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: in the helper process when enabled for this thread, else here.

    ``fn`` must be a module-level function and its arguments picklable. If the
    helper process has died, the call runs here instead.
    """
    if not getattr(_local, "enabled", False):
        return fn(*args)
    with _lock:
        try:
            server = _start()
            send(server.stdin, (fn.__module__, fn.__qualname__, args))
            ok, value = receive(server.stdout)
        except (OSError, EOFError, pickle.PickleError):
            shutdown_locked()
            return fn(*args)
    if ok:
        return value
    raise value


def shutdown_locked() -> None:
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
