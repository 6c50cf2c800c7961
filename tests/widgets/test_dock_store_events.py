"""A model saved from a worker thread reaches every open dock, on the GUI thread."""
from __future__ import annotations

import threading

from napari_dlmicro.core.models.store import notify_store_changed


def test_a_dock_hears_a_model_saved_in_another_thread_on_the_gui_thread(qtbot):
    from napari_dlmicro.widgets._dock import DockPanel

    heard = []

    class Listening(DockPanel):
        def on_store_changed(self, folder: str) -> None:
            heard.append((folder, threading.current_thread() is threading.main_thread()))

    dock = Listening(None)
    qtbot.addWidget(dock)
    saver = threading.Thread(target=notify_store_changed, args=("models/new",))
    saver.start()
    saver.join()
    qtbot.waitUntil(lambda: bool(heard), timeout=5000)
    assert heard == [("models/new", True)]


def test_a_change_that_arrives_after_a_dock_is_gone_is_dropped_quietly(qtbot):
    import gc

    from napari_dlmicro.widgets._dock import STORE_EVENTS, DockPanel

    before = len(STORE_EVENTS.changed)
    dock = DockPanel(None)
    assert len(STORE_EVENTS.changed) == before + 1
    saver = threading.Thread(target=notify_store_changed, args=("models/late",))
    saver.start()
    saver.join()  # the change waits for the GUI thread, and the dock goes before it is delivered
    del dock
    gc.collect()
    qtbot.wait(100)  # delivered now: an error in the event loop would fail this test
    assert len(STORE_EVENTS.changed) <= before  # its listener removed itself (with any other gone dock's)
