"""Values of a list of declared settings, evented: a dock's form edits them, the job reads them checked."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psygnal import Signal

from napari_dlmicro.core.settings import Setting


class SettingValues:
    """One value per :class:`Setting` (its default until set); ``changed(name, value)`` on every change.

    Values are kept as the form gives them; :meth:`checked` converts and range-checks them, so a value
    typed out of range is refused with a message naming the setting when the job is built.
    """

    changed = Signal(str, object)
    specs_changed = Signal()

    def __init__(self, specs: Sequence[Setting] = (), values: Mapping[str, Any] | None = None) -> None:
        self.specs: dict[str, Setting] = {}
        self._values: dict[str, Any] = {}
        self.set_specs(specs, values)

    def set_specs(self, specs: Sequence[Setting], values: Mapping[str, Any] | None = None) -> None:
        """Replace the settings (another model, another kind); ``values`` restore remembered ones."""
        self.specs = {s.name: s for s in specs}
        remembered = dict(values or {})
        self._values = {s.name: remembered.get(s.name, s.default) for s in specs}
        self.specs_changed.emit()

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def names(self) -> Iterable[str]:
        """The settings' names, in declared order."""
        return self._values.keys()

    def set(self, name: str, value: Any) -> None:
        """Change one value (an unknown name is a programming error)."""
        if name not in self.specs:
            raise KeyError(name)
        if self._values.get(name) != value:
            self._values[name] = value
            self.changed.emit(name, value)

    def update(self, values: Mapping[str, Any]) -> None:
        """Change several values; names this list does not hold are ignored (settings of another kind)."""
        for name, value in values.items():
            if name in self.specs:
                self.set(name, value)

    def raw(self) -> dict[str, Any]:
        """Every value as it is (for remembering)."""
        return dict(self._values)

    def checked(self) -> dict[str, Any]:
        """Every value converted and checked against its setting's range (a UserError names the first bad one)."""
        return {name: self.specs[name].check(value) for name, value in self._values.items()}

    def changed_from_defaults(self) -> dict[str, Any]:
        """The checked values that differ from their defaults (a model's own values apply to the rest)."""
        return {k: v for k, v in self.checked().items() if v != self.specs[k].default}
