"""A small form of number fields built from a model's :class:`Setting` list."""
from __future__ import annotations

from qtpy.QtWidgets import QDoubleSpinBox, QFormLayout, QWidget

from napari_dlmicro.core.models.base import Setting

DEFAULT = "model default"


class SettingsForm(QWidget):
    """Spin boxes for settings; the lowest value reads 'model default' and means None."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, QDoubleSpinBox] = {}

    def set_settings(self, settings: tuple[Setting, ...], values: dict | None = None) -> None:
        """Rebuild the fields; ``values`` restores remembered numbers."""
        while self.form.rowCount():
            self.form.removeRow(0)
        self.fields = {}
        for s in settings:
            box = QDoubleSpinBox()
            box.setDecimals(2 if s.step < 1 else 0)
            box.setSingleStep(s.step)
            box.setRange(s.minimum - s.step, s.maximum)
            box.setSpecialValueText(DEFAULT)
            box.setToolTip(f"{s.tooltip} Leave at '{DEFAULT}' for the model's own value ({s.default:g}).".strip())
            value = (values or {}).get(s.name)
            box.setValue(box.minimum() if value is None else float(value))
            self.form.addRow(s.label, box)
            self.fields[s.name] = box

    def values(self) -> dict[str, float]:
        """Only the settings the user changed from 'model default'."""
        return {k: b.value() for k, b in self.fields.items() if b.value() > b.minimum()}

    def raw(self) -> dict[str, float | None]:
        """Every field, None for 'model default' (for remembering)."""
        return {k: (b.value() if b.value() > b.minimum() else None) for k, b in self.fields.items()}
