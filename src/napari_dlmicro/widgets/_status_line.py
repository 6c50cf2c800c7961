"""A status label whose size never depends on its text.

A plain QLabel asks for a new size whenever its text changes length; inside
napari's window that re-lays out the docks and can resize and redraw the
canvas, holding the event loop for 20 ms or more. A running job changes its
status several times a second, so the docks show it in a label of fixed
height that ignores its text's width: a new text only repaints the label.
"""
from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QLabel, QSizePolicy, QWidget


class StatusLine(QLabel):
    """Word-wrapped text in ``lines`` lines of fixed height; the whole text is also its tooltip."""

    def __init__(self, text: str = "", lines: int = 3, parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._height = lines * self.fontMetrics().lineSpacing() + 4
        self.setFixedHeight(self._height)
        self.setToolTip(text)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """The same whatever the text (the width is ignored by the layout)."""
        return QSize(0, self._height)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """The same whatever the text."""
        return QSize(0, self._height)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        """Show ``text`` (and keep it whole in the tooltip, in case it is longer than the lines)."""
        super().setText(text)
        self.setToolTip(text)
