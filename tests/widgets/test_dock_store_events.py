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
