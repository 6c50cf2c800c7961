"""The class list of the Classification dock: pick the class clicks assign, name it, colour it, add or remove one.

One row per class: a button showing its key (1-9) in the class colour,
which selects it; its name; a button that opens a colour chooser; how many
objects were clicked as it. Edits go to the dock's state, and the
rows follow the state (classes restored, adopted from a stored classifier).
"""
from __future__ import annotations

from collections.abc import Callable

from qtpy.QtGui import QColor
from qtpy.QtWidgets import (
    QButtonGroup,
    QColorDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.state.classification import MAX_KEYS, ClassificationState


def _swatch(button: QToolButton, colour: str) -> None:
    text = "black" if QColor(colour).lightness() > 140 else "white"
    button.setStyleSheet(f"QToolButton {{ background-color: {colour}; color: {text}; border: 1px solid #555; "
                         "padding: 1px 4px; } QToolButton:checked { border: 3px solid #ffffff; }")


class ClassList(QWidget):
    """Rows of classes bound to ``state``; ``on_error`` shows a refused edit."""

    def __init__(self, state: ClassificationState, on_error: Callable[[UserError], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.on_error = state, on_error
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.grid = QGridLayout()
        self.grid.setColumnStretch(1, 1)
        outer.addLayout(self.grid)
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add class")
        self.add_button.clicked.connect(self._add)
        self.remove_button = QPushButton("Remove", toolTip="Remove the selected class (it must have no clicks)")
        self.remove_button.clicked.connect(self._remove)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        outer.addLayout(buttons)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.group.idClicked.connect(self._select)
        self.keys: list[QToolButton] = []
        self.names: list[QLineEdit] = []
        self.colours: list[QToolButton] = []
        self.counts: list[QLabel] = []
        state.events.classes.connect(self.rebuild)
        state.events.current.connect(self._show_current)
        state.events.table.connect(self.show_counts)
        self.rebuild()

    def rebuild(self, *_) -> None:
        """One row per class of the state."""
        for key in self.keys:
            self.group.removeButton(key)
        for w in self.keys + self.names + self.colours + self.counts:
            w.deleteLater()
        self.keys, self.names, self.colours, self.counts = [], [], [], []
        for k, spec in enumerate(self.state.classes):
            key = QToolButton(text=str(k + 1) if k < MAX_KEYS else "·", checkable=True,
                              toolTip=f"Clicks label objects as '{spec.name}'"
                                      + (f" (key {k + 1} on the Labels layer)" if k < MAX_KEYS else ""))
            _swatch(key, spec.colour)
            self.group.addButton(key, k)
            name = QLineEdit(spec.name, toolTip="The class name (remembered for the next session)")
            name.editingFinished.connect(lambda k=k, e=name: self._rename(k, e.text()))
            colour = QToolButton(text="…", toolTip="Change the class colour")
            colour.clicked.connect(lambda _=False, k=k: self.choose_colour(k))
            count = QLabel("", toolTip="Objects clicked as this class")
            for col, w in enumerate((key, name, colour, count)):
                self.grid.addWidget(w, k, col)
            self.keys.append(key)
            self.names.append(name)
            self.colours.append(colour)
            self.counts.append(count)
        self._show_current()
        self.show_counts()

    def _show_current(self, *_) -> None:
        if 0 <= self.state.current < len(self.keys):
            self.keys[self.state.current].setChecked(True)

    def show_counts(self, *_) -> None:
        """How many objects each class has clicked."""
        for label, n in zip(self.counts, self.state.clicked().values()):
            label.setText(f"{n} clicked")

    def choose_colour(self, index: int) -> None:
        """Ask for a new colour of class ``index``."""
        colour = QColorDialog.getColor(QColor(self.state.classes[index].colour), self, "Class colour")
        if colour.isValid():
            self._guard(self.state.set_colour, index, colour.name())

    def _guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except UserError as exc:
            self.on_error(exc)
            self.rebuild()  # show the state as it is (a refused rename reverts)

    def _select(self, index: int) -> None:
        self._guard(self.state.select, index)

    def _rename(self, index: int, text: str) -> None:
        if index < len(self.state.classes) and text.strip() != self.state.classes[index].name:
            self._guard(self.state.rename_class, index, text)

    def _add(self) -> None:
        self._guard(lambda: self.state.select(self.state.add_class()))

    def _remove(self) -> None:
        self._guard(self.state.remove_class, self.state.current)
