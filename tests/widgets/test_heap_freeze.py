"""Opening a dock freezes the heap out of full collections, and nothing the user removes is kept by it."""
from __future__ import annotations

import gc
import weakref

import numpy as np

from napari_dlmicro.widgets.evaluate import EvaluateWidget


def _settle(qtbot) -> None:
    qtbot.wait(20)  # the freeze runs from the event loop, after the dock is built


def test_a_dock_freezes_the_heap_and_full_collections_walk_little(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.window.add_dock_widget(EvaluateWidget(viewer))
    _settle(qtbot)
    assert gc.get_freeze_count() > 100_000  # napari, Qt and torch: out of the collector's walk
    assert len(gc.get_objects()) < gc.get_freeze_count() // 10


def test_a_layer_alive_at_the_freeze_is_freed_when_removed(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((64, 64), np.float32))
    viewer.window.add_dock_widget(EvaluateWidget(viewer))
    _settle(qtbot)
    gone = weakref.ref(layer)
    del layer
    viewer.layers.clear()
    _settle(qtbot)  # removing it thaws, collects and freezes again
    assert gone() is None
    assert gc.get_freeze_count() > 0


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_destroying_a_dock_frees_what_the_freeze_kept(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    cycle = _Cycle()  # alive when the heap is frozen, garbage right after
    gone = weakref.ref(cycle)
    dock = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(dock)
    _settle(qtbot)
    del cycle
    gc.collect()
    assert gone() is not None  # frozen: the collector does not walk it
    dock.deleteLater()
    qtbot.waitUntil(lambda: gc.collect() >= 0 and gone() is None, timeout=2000)


def test_freezing_new_objects_keeps_the_old_freeze_and_adds_what_came_since(make_napari_viewer, qtbot):
    from napari_dlmicro.widgets._collector import freeze_new_objects

    viewer = make_napari_viewer()
    viewer.window.add_dock_widget(EvaluateWidget(viewer))
    _settle(qtbot)
    old = _Cycle()  # garbage made before the first freeze stays frozen (a thaw would free it)
    frozen = gc.get_freeze_count()
    gc.freeze()
    gone = weakref.ref(old)
    del old
    kept = [[] for _ in range(1000)]  # lists: objects the collector tracks
    freeze_new_objects()
    _settle(qtbot)
    assert gone() is not None  # not thawed: the collection walked only what was new
    assert gc.get_freeze_count() >= frozen + 1000
    assert kept
