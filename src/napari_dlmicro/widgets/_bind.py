"""Two-way bindings between Qt fields and a dock's evented state: the widget edits it, the state updates it."""
from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget


def bind(state: Any, name: str, widget: QWidget) -> QWidget:
    """Keep ``state.<name>`` and ``widget`` in step (spin box, check box, line edit or combo box by text)."""
    def show(value: Any) -> None:
        widget.blockSignals(True)
        try:
            if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                widget.setValue(widget.minimum() if value is None else value)
            elif isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, QLineEdit):
                widget.setText("" if value is None else str(value))
            elif isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
        finally:
            widget.blockSignals(False)

    if isinstance(widget, QSpinBox):
        widget.valueChanged.connect(lambda v: setattr(state, name, int(v)))
    elif isinstance(widget, QDoubleSpinBox):
        widget.valueChanged.connect(lambda v: setattr(state, name, float(v)))
    elif isinstance(widget, QCheckBox):
        widget.toggled.connect(lambda v: setattr(state, name, bool(v)))
    elif isinstance(widget, QLineEdit):
        widget.textChanged.connect(lambda v: setattr(state, name, v))
    elif isinstance(widget, QComboBox):
        widget.currentTextChanged.connect(lambda v: setattr(state, name, v))
    else:
        raise TypeError(f"cannot bind a {type(widget).__name__}")
    getattr(state.events, name).connect(show)
    show(getattr(state, name))
    return widget


def spin_for(setting, widget: QSpinBox | QDoubleSpinBox) -> QSpinBox | QDoubleSpinBox:
    """Give ``widget`` the range, step and tooltip a declared setting has."""
    low = setting.minimum if setting.minimum is not None else -1e9
    high = setting.maximum if setting.maximum is not None else 1e9
    widget.setRange(type(widget.value())(low), type(widget.value())(high))
    if setting.step:
        widget.setSingleStep(setting.step)
    widget.setToolTip(setting.tooltip)
    return widget
