"""A form built from declared settings (:class:`...core.settings.Setting`), bound both ways to a SettingValues.

Numbers get spin boxes with the setting's range and step, choices a combo box,
a set of choices a grid of check boxes, yes/no a check box. An optional
setting's lowest spin-box value reads ``none_text`` ("model default", "none")
and means None. The form edits the values; the values, changed elsewhere
(restored, another model), update the form.
"""
from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from napari_dlmicro.core.settings import Setting
from napari_dlmicro.state.values import SettingValues

CHOICES_PER_ROW = 3


class SettingsForm(QWidget):
    """Fields for every setting of ``values``; ``fields[name]`` is each field's widget."""

    def __init__(self, values: SettingValues, none_text: str = "default", tips: dict[str, str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values = values
        self.none_text = none_text
        self.tips = tips or {}
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.fields: dict[str, QWidget] = {}
        values.specs_changed.connect(self.rebuild)
        values.changed.connect(self._show)
        values.changed.connect(self._budget)
        self.rebuild()

    def rebuild(self) -> None:
        """Make one field per setting (the settings changed: another model or kind)."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        for s in self.values.specs.values():
            field = self._field(s)
            field.setToolTip(s.tooltip)
            self.form.addRow(s.label, field)
            self.fields[s.name] = field
            self._show(s.name, self.values[s.name])
        self._budget()

    def _budget(self, name: str = "epochs", value: Any = None) -> None:
        """An epoch budget switches the minutes off (the run counts epochs then)."""
        if name == "epochs" and "minutes" in self.fields and "epochs" in self.values:
            self.fields["minutes"].setEnabled(self.values["epochs"] is None)

    def _field(self, s: Setting) -> QWidget:
        if s.many:
            return _ChoiceGrid(s, self.tips, lambda v, n=s.name: self.values.set(n, v))
        if s.choices:
            box = QComboBox()
            box.addItems(list(s.choices))
            box.currentTextChanged.connect(lambda v, n=s.name: self.values.set(n, v))
            return box
        if s.type is bool:
            box = QCheckBox()
            box.toggled.connect(lambda v, n=s.name: self.values.set(n, bool(v)))
            return box
        if s.type in (int, float):
            return self._spin(s)
        edit = QLineEdit()
        edit.editingFinished.connect(lambda n=s.name, e=edit: self.values.set(n, e.text().strip() or None))
        return edit

    def _spin(self, s: Setting) -> QWidget:
        step = s.step or (1 if s.type is int else 0.1)
        box: QSpinBox | QDoubleSpinBox = QSpinBox() if s.type is int else QDoubleSpinBox()
        if isinstance(box, QDoubleSpinBox):
            box.setDecimals(_decimals(step))
        low = s.minimum if s.minimum is not None else -1e9
        high = s.maximum if s.maximum is not None else 1e9
        if s.optional:  # the lowest value means None: 0 when the range starts above it, else one step below
            low = 0 if low > 0 else low - step
            box.setSpecialValueText(self.none_text)
        box.setRange(type(box.value())(low), type(box.value())(high))
        box.setSingleStep(step)
        box.valueChanged.connect(lambda v, n=s.name, b=box: self.values.set(n, self._read(b, n)))
        return box

    def _read(self, box, name: str) -> Any:
        spec = self.values.specs[name]
        value = box.value()
        if spec.optional and value == box.minimum():
            return None
        return int(value) if spec.type is int else float(value)

    def _show(self, name: str, value: Any) -> None:
        field = self.fields.get(name)
        if field is None:
            return
        field.blockSignals(True)
        try:
            if isinstance(field, _ChoiceGrid):
                field.show_value(value)
            elif isinstance(field, QComboBox):
                field.setCurrentText(str(value))
            elif isinstance(field, QCheckBox):
                field.setChecked(bool(value))
            elif isinstance(field, (QSpinBox, QDoubleSpinBox)):
                field.setValue(field.minimum() if value is None else value)
            elif isinstance(field, QLineEdit):
                field.setText("" if value is None else str(value))
        finally:
            field.blockSignals(False)


def _decimals(step: float) -> int:
    text = f"{step:.10f}".rstrip("0")
    return max(1, len(text.split(".")[1])) if "." in text else 0


class _ChoiceGrid(QWidget):
    """A check box per choice, three a row (the dock stays narrow); the value is the tuple of checked ones."""

    def __init__(self, s: Setting, tips: dict[str, str], on_change) -> None:
        super().__init__()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.boxes: dict[str, QCheckBox] = {}
        for i, name in enumerate(s.choices):
            box = QCheckBox(name, toolTip=tips.get(name, ""))
            box.toggled.connect(lambda *_: on_change(self.value()))
            grid.addWidget(box, i // CHOICES_PER_ROW, i % CHOICES_PER_ROW)
            self.boxes[name] = box

    def value(self) -> tuple[str, ...]:
        return tuple(n for n, b in self.boxes.items() if b.isChecked())

    def show_value(self, value) -> None:
        chosen = set(value or ())
        for name, box in self.boxes.items():
            box.blockSignals(True)
            box.setChecked(name in chosen)
            box.blockSignals(False)
