"""The slow first-time work of a dock's jobs, done once per process in the background when the dock opens.

A job's first run imports what it has not needed before: the first optimiser
imports ``torch._dynamo`` (about 900 modules, over a second), the first ONNX
export ``torch.onnx``, the first checkpoint the model writers. Inside a job
those imports made Python's collector walk the new objects while napari
waited (40-60 ms stalls, 2 s into a Denoising run), and an import of a
compiled module holds the GIL for tens of milliseconds. Done here, on a
helper thread right after the dock opens, none of it lands inside a job; when
it is done the new objects are frozen out of later collections
(``_collector``). A click that comes sooner waits on the import lock, as it
would have anyway.

Only imports, our own functions and pure array functions run here (vispy's
line patterns, napari's labels colour mapping), never napari's layers: those
are not made off the GUI thread (a Labels layer made here, to compile its
colormap ahead, raced napari's first use of its unit registry and broke the
opening of an image).
"""
from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterable

from qtpy.QtCore import QObject, Signal

from napari_dlmicro.core.runtime.llvm import avoid_triton_crash
from napari_dlmicro.widgets._collector import freeze_new_objects
from napari_dlmicro.widgets._napari_compat import warm_labels_colours

_DONE: set[str] = set()
_LOCK = threading.Lock()
_THREADS: list[threading.Thread] = []


class _Relay(QObject):
    """Carries "warm-up done" from the helper thread to the GUI thread (made on the GUI thread)."""

    done = Signal()


_RELAY: list[_Relay] = []


def _optimiser() -> None:
    import torch

    avoid_triton_crash()  # before torch._dynamo looks for triton
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def _onnx_export() -> None:
    from napari_dlmicro.core.models.engines.onnx_export import warm_up_exporter

    warm_up_exporter()


def _helper_process() -> None:
    from napari_dlmicro.core.runtime import offload

    offload.warm_up()


def _labels_drawing() -> None:
    # Inside the first Labels layer a dock adds, on the GUI thread: vispy computing the dash patterns of the
    # layer's brush and polygon outlines in Python (50-100 ms; vispy caches them per process), and numba
    # compiling napari's labels colour mapping (1.8 s the first time after an install, then 30 ms to load
    # from numba's cache each process). Both are filled here; no GL is touched.
    from vispy.visuals.line.dash_atlas import DashAtlas

    DashAtlas()
    warm_labels_colours()


TASKS: dict[str, Callable[[], None]] = {"optimiser": _optimiser, "onnx export": _onnx_export,
                                        "helper process": _helper_process, "labels drawing": _labels_drawing}


def warm_up(tasks: Iterable[str] = (), modules: Iterable[str] = ()) -> None:
    """Run ``tasks`` (names in :data:`TASKS`) and import ``modules``, each once per process.

    On a daemon thread; returns at once. Call on the GUI thread (from a dock's ``__init__``).
    """
    with _LOCK:
        todo = [t for t in tasks if t not in _DONE] + [m for m in modules if m not in _DONE]
        _DONE.update(todo)
    if not todo:
        return
    if not _RELAY:
        _RELAY.append(_Relay())
        _RELAY[0].done.connect(freeze_new_objects)
    relay = _RELAY[0]

    def run() -> None:
        for name in todo:
            with contextlib.suppress(Exception):  # a warm-up that fails leaves the work to the job, as before
                TASKS[name]() if name in TASKS else importlib.import_module(name)
        with contextlib.suppress(RuntimeError):  # the application may have gone meanwhile
            relay.done.emit()

    thread = threading.Thread(target=run, name="dlmicro-warm-up", daemon=True)
    _THREADS[:] = [t for t in _THREADS if t.is_alive()] + [thread]
    thread.start()


def warming() -> bool:
    """True while a warm-up thread still runs."""
    return any(t.is_alive() for t in _THREADS)
