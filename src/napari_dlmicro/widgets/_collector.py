"""Python's cycle collector and napari's event loop: the heap alive when a dock opens is frozen.

A full collection walks every object the collector tracks. With napari, Qt,
vispy, torch and a dock loaded that is over 500,000 objects, 0.4-0.9 s on the
GUI thread, at whatever moment the allocation counters decide (measured: at
the end of each Preview view, while the user pans). ``gc.freeze()`` moves the
objects alive at one moment into a generation the collector never walks, so
later collections cost only what was made since.

Frozen objects that later fall into unreachable reference cycles are never
freed, and napari's layers and docks are such cycles. So the freeze is lifted
and taken again (one collection, from the event loop right after the user's
click) when a layer that was alive at the freeze is removed, and lifted when a dock is destroyed
(a closing viewer frees everything as before).
"""
from __future__ import annotations

import gc
import weakref

from qtpy.QtCore import QTimer

_FROZEN_LAYERS: weakref.WeakSet = weakref.WeakSet()
_VIEWERS: weakref.WeakSet = weakref.WeakSet()
_STATE = {"docks": 0, "pending": False, "thaw": False}


def freeze_heap_for(viewer) -> None:
    """A dock opened in ``viewer``: freeze the heap once the dock is built (and follow the viewer's layers)."""
    _STATE["docks"] += 1
    if viewer is not None and viewer not in _VIEWERS:
        _VIEWERS.add(viewer)
        viewer.layers.events.removed.connect(_layer_removed)
    _schedule_refreeze()


def dock_destroyed() -> None:
    """A dock is gone: lift the freeze, so that what it (or its closing viewer) held can be collected."""
    _STATE["docks"] = max(0, _STATE["docks"] - 1)
    gc.unfreeze()
    _FROZEN_LAYERS.clear()
    if _STATE["docks"]:
        _schedule_refreeze()


def freeze_new_objects() -> None:
    """Much was just made that stays (modules imported in the background): freeze it too, without a thaw.

    The collection then walks only what is not frozen yet, a fraction of a full one.
    """
    if _STATE["docks"]:
        _schedule_refreeze(thaw=False)


def refreeze() -> None:
    """Collect what is garbage now, then freeze everything alive (the layers of each viewer among it).

    When every request since the last one asked for no thaw (:func:`freeze_new_objects`), only what was made
    since the last freeze is collected; otherwise the frozen heap is thawed and collected too.
    """
    _STATE["pending"] = False
    thaw, _STATE["thaw"] = _STATE["thaw"], False
    if not _STATE["docks"]:
        return
    if thaw:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    _FROZEN_LAYERS.clear()
    for viewer in list(_VIEWERS):
        _FROZEN_LAYERS.update(viewer.layers)


def _schedule_refreeze(thaw: bool = True) -> None:
    _STATE["thaw"] = _STATE["thaw"] or thaw  # one pending refreeze thaws if any of its requests asked to
    if not _STATE["pending"]:
        _STATE["pending"] = True
        QTimer.singleShot(0, refreeze)


def _layer_removed(event) -> None:
    layer = getattr(event, "value", None)
    if layer is not None and layer in _FROZEN_LAYERS:
        _FROZEN_LAYERS.discard(layer)
        _schedule_refreeze()  # thawed, collected and frozen again from the event loop, never mid-paint
