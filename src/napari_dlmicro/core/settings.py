"""Settings a user can change: name, type, default, range and help, declared once.

A kind of model declares its prediction and training settings as
:class:`Setting` lists (see :mod:`.models.registry`); the command line builds
its flags from them and the docks their forms, so a default lives in one place
and a value outside its range is refused the same way everywhere, with a
message that names the setting, the value and the range.

Training settings take their default and type from the field of the kind's
settings dataclass (:func:`from_field`), so the dataclass stays the one source
of the numbers and the :class:`Setting` adds the label, range and help.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class Setting:
    """One user-facing knob.

    ``type`` is ``int``, ``float``, ``bool`` or ``str``. ``choices`` limits a
    ``str`` (with ``many``, a comma-separated set of them), or an ``int`` to
    those numbers (written as text: ``("1", "2", "4")``). ``optional``
    settings may be None ("the model's own", "no limit").
    """

    name: str
    label: str
    default: Any = None
    type: type = float
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    help: str = ""
    choices: tuple[str, ...] = ()
    many: bool = False
    optional: bool = False
    cli: str = ""  # the command-line flag, when it is not the name's (``--batch-size`` for ``batch``)

    @property
    def flag(self) -> str:
        """The command-line flag: ``--prob-thresh`` for ``prob_thresh``."""
        return self.cli or "--" + self.name.replace("_", "-")

    @property
    def tooltip(self) -> str:
        """The help text with the range, for a dock's tooltip."""
        return f"{self.help} ({self.range_text()})".strip() if self.range_text() else self.help

    def range_text(self) -> str:
        """``0 to 1``, ``at least 1``, ``one of a, b`` or ``''``."""
        if self.choices:
            return ("any of " if self.many else "one of ") + ", ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{_fmt(self.minimum)} to {_fmt(self.maximum)}"
        if self.minimum is not None:
            return f"at least {_fmt(self.minimum)}"
        if self.maximum is not None:
            return f"at most {_fmt(self.maximum)}"
        return ""

    def check(self, value: Any) -> Any:
        """``value`` converted to this setting's type and checked against its range; else a :class:`UserError`."""
        if value is None or (not self.many and isinstance(value, str)
                             and value.strip().lower() in ("", "none", "default")):
            if self.optional:
                return None
            raise UserError(f"{self.label} needs a value", f"give {self.range_text() or 'a value'}")
        try:
            converted = self._convert(value)
        except (TypeError, ValueError):
            raise UserError(f"{self.label} must be {_type_word(self.type)}, not {value!r}",
                            f"give {self.range_text() or _type_word(self.type)}") from None
        self._check_range(converted, value)
        return converted

    def _convert(self, value: Any) -> Any:
        if self.many:
            items = value.split(",") if isinstance(value, str) else list(value)
            chosen = {str(v).strip() for v in items if str(v).strip()} - {"none"}
            order = list(self.choices) + sorted(chosen - set(self.choices))  # declared order; unknown ones last
            return tuple(c for c in order if c in chosen)
        if self.type is bool:
            if isinstance(value, str):
                if value.strip().lower() in ("1", "true", "yes", "on"):
                    return True
                if value.strip().lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if self.type is int:
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if self.type is float:
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            return number
        return str(value)

    def _check_range(self, converted: Any, given: Any) -> None:
        bad = None
        if self.choices:
            items = converted if self.many else (converted,)
            wrong = [str(v) for v in items if str(v) not in self.choices]
            bad = ", ".join(wrong) if wrong else None
        elif self.type in (int, float) and (
                (self.minimum is not None and converted < self.minimum)
                or (self.maximum is not None and converted > self.maximum)):
            bad = given
        if bad is not None:
            raise UserError(f"{self.label} cannot be {bad}", f"give {self.range_text()}")


def _fmt(x: float) -> str:
    return f"{x:g}"


def _type_word(t: type) -> str:
    return {int: "a whole number", float: "a number", bool: "yes or no", str: "text"}.get(t, t.__name__)


def from_field(cls: type, name: str, label: str, help: str = "", **meta: Any) -> Setting:
    """A :class:`Setting` whose default and type come from field ``name`` of dataclass ``cls``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise KeyError(f"{cls.__name__} has no field {name!r}")
    f = fields[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    hint = typing.get_type_hints(cls)[name]
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    optional = union and type(None) in typing.get_args(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
    base = typing.get_origin(args[0]) or args[0]
    many = base is tuple
    kind = str if many else base
    if isinstance(default, tuple):
        default = tuple(default)
    return Setting(name=name, label=label, default=default, type=kind, help=help, many=many,
                   optional=meta.pop("optional", optional), **meta)


def defaults(specs: Iterable[Setting]) -> dict[str, Any]:
    """``{name: default}`` of ``specs``."""
    return {s.name: s.default for s in specs}


def check_values(specs: Sequence[Setting], values: Mapping[str, Any], what: str = "setting") -> dict[str, Any]:
    """``values`` checked against ``specs`` (unknown names refused); settings not given are left out."""
    by_name = {s.name: s for s in specs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise UserError(f"unknown {what} {', '.join(unknown)}", f"use {', '.join(by_name) or 'none'}")
    return {k: by_name[k].check(v) for k, v in values.items()}


def build(cls: type, specs: Sequence[Setting], values: Mapping[str, Any], **fixed: Any) -> Any:
    """An instance of settings dataclass ``cls`` from checked ``values`` (defaults for the rest) and ``fixed``."""
    return cls(**{**check_values(specs, values), **fixed})
