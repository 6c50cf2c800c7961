"""What every dock shares: it scrolls instead of growing napari's window, and it ends its jobs when it closes.

A dock's content sits in a vertical scroll area whose minimum size is small,
so several docks stacked on a laptop screen share its height and none widens
the window; fields wrap or elide rather than push the width. Jobs a dock
starts are cancelled when the dock (or the viewer) closes, and a dock hears
when the model store changes, on the GUI thread. Opening a dock freezes the
heap alive then out of Python's full collections (``_collector``).
"""
from __future__ import annotations

import weakref
from collections.abc import Callable

import psygnal.qt
from psygnal import Signal
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication, QComboBox, QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from napari_dlmicro.core.models.engines.choice import keep_out_of_napari
from napari_dlmicro.core.models.store import on_store_changed
from napari_dlmicro.widgets._collector import dock_destroyed, freeze_heap_for
from napari_dlmicro.widgets._warm_up import warm_up
from napari_dlmicro.workers import JobHandle

MAX_MIN_WIDTH = 420  # no dock may need more than this (a 1366 px laptop keeps its canvas)
FIELD_CHARACTERS = 12  # combo boxes show this much of a long name and elide the rest


class _StoreEvents:
    """The core's store notices (plain callbacks, from any thread) as a signal each dock hears on the GUI thread."""

    changed = Signal(str)


STORE_EVENTS = _StoreEvents()
on_store_changed(STORE_EVENTS.changed.emit)


class DockPanel(QScrollArea):
    """A dock's frame: content in ``self.body`` (a QVBoxLayout), scrolling vertically, jobs tracked."""

    def __init__(self, napari_viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        keep_out_of_napari()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.content = QWidget()
        self.content.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.body = QVBoxLayout(self.content)
        self.setWidget(self.content)
        self.setMinimumWidth(0)
        self._handles: list[JobHandle] = []
        psygnal.qt.start_emitting_from_queue()  # store events from worker threads arrive on the GUI thread
        _listen_to_store(self)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.cancel_jobs)
        self.destroyed.connect(_cancel_all(self._handles))
        self.destroyed.connect(_release_heap)
        freeze_heap_for(napari_viewer)  # full collections then skip what napari and the dock hold
        warm_up(("labels drawing",))  # every dock may add a Labels layer: its first one is drawn sooner

    def track(self, handle: JobHandle) -> JobHandle:
        """Remember a job this dock started, to cancel it when the dock closes."""
        self._handles[:] = [h for h in self._handles if not h.finished] + [handle]
        return handle

    def cancel_jobs(self) -> None:
        """Cancel every job this dock started that is still running."""
        for handle in list(self._handles):
            handle.cancel()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Closing the dock cancels its jobs."""
        self.cancel_jobs()
        super().closeEvent(event)

    def on_store_changed(self, folder: str) -> None:
        """A model was saved into (or removed from) the store; docks that list models refresh."""

    def minimumSizeHint(self):  # noqa: N802 (Qt's name)
        """Small, whatever the content: the dock scrolls instead of growing the window."""
        hint = super().minimumSizeHint()
        hint.setWidth(min(hint.width(), MAX_MIN_WIDTH))
        hint.setHeight(min(hint.height(), 120))
        return hint


def _listen_to_store(dock: DockPanel) -> None:
    """Bring store changes to ``dock`` on the GUI thread while it lives; nothing here keeps it alive.

    Queued for the GUI thread, a change can arrive after the dock is gone (its
    Python object collected, or its Qt objects deleted): the listener then
    removes itself instead of failing in napari's event loop.
    """
    ref = weakref.ref(dock)

    def deliver(folder: str) -> None:
        alive = ref()
        try:
            if alive is None:
                raise RuntimeError("the dock is gone")
            alive.on_store_changed(folder)
        except RuntimeError:  # gone, or its Qt objects are (it is closing)
            STORE_EVENTS.changed.disconnect(deliver)

    STORE_EVENTS.changed.connect(deliver, thread="main")


def _cancel_all(handles: list[JobHandle]) -> Callable[..., None]:
    """A slot that cancels ``handles`` without holding on to the dock (it is being destroyed)."""
    def cancel(*_) -> None:
        for handle in list(handles):
            handle.cancel()

    return cancel


def _release_heap(*_) -> None:
    dock_destroyed()


def narrow_combo(combo: QComboBox) -> QComboBox:
    """A combo box that does not widen its dock to its longest entry (it elides; the list shows whole names)."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(FIELD_CHARACTERS)
    combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return combo
