"""A folder field with a browse button, as the Annotation and Training docks use for the training set."""
from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget


class FolderRow(QWidget):
    """A line edit for a folder and a "…" button that picks one; ``on_change()`` runs after either."""

    def __init__(self, text: str, tooltip: str, title: str, on_change: Callable[[], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._title, self._on_change = title, on_change
        self.edit = QLineEdit(text, toolTip=tooltip)
        self.edit.editingFinished.connect(on_change)
        browse = QPushButton("…")
        browse.clicked.connect(self.browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit, 1)
        row.addWidget(browse)

    def browse(self) -> None:
        """Ask for a folder; if one is picked, show it and run ``on_change``."""
        folder = QFileDialog.getExistingDirectory(self, self._title, self.edit.text())
        if folder:
            self.edit.setText(folder)
            self._on_change()
