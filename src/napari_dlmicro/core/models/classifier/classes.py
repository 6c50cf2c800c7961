"""Object classes: a name and a colour each, in the order a classifier numbers them."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from napari_dlmicro.core.errors import UserError

# distinct colours for the first classes (Okabe-Ito, then a few more); further classes cycle
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#f0e442", "#0072b2", "#d55e00", "#cc79a7", "#999999",
           "#000000", "#882255", "#44aa99", "#117733")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_CLASSES = 255  # class maps are written as uint8 below this, uint16 above; more is a labelling mistake


@dataclass(frozen=True)
class ClassSpec:
    """One class: its name and its colour (``#rrggbb``)."""

    name: str
    colour: str

    def to_dict(self) -> dict[str, str]:
        """``{"name": ..., "colour": ...}`` for a config file."""
        return {"name": self.name, "colour": self.colour}


def make_classes(names: Sequence[str], colours: Sequence[str | None] | None = None) -> tuple[ClassSpec, ...]:
    """Classes called ``names`` (in that order) with ``colours`` (palette colours where None or not given)."""
    names = [str(n).strip() for n in names]
    if any(not n for n in names):
        raise UserError("a class has an empty name", "give every class a name")
    seen: set[str] = set()
    twice = [n for n in names if n in seen or seen.add(n)]
    if twice:
        raise UserError(f"the class {twice[0]!r} is named twice", "give every class its own name")
    if len(names) > MAX_CLASSES:
        raise UserError(f"{len(names)} classes were given", f"use at most {MAX_CLASSES} classes")
    colours = list(colours or [])
    out = []
    for i, name in enumerate(names):
        colour = colours[i] if i < len(colours) and colours[i] else PALETTE[i % len(PALETTE)]
        colour = str(colour).strip().lower()
        if not _HEX.match(colour):
            raise UserError(f"the colour {colour!r} of class {name!r} is not a #rrggbb colour",
                            "give colours as #rrggbb, for example #e69f00")
        out.append(ClassSpec(name, colour))
    return tuple(out)


def classes_from_dicts(items: Iterable[dict]) -> tuple[ClassSpec, ...]:
    """Classes from ``[{"name": ..., "colour": ...}, ...]`` (a config file's list)."""
    items = list(items)
    if not all(isinstance(i, dict) and "name" in i for i in items):
        raise UserError("the class list is not a list of {name, colour} entries",
                        'write it as [{"name": "positive", "colour": "#d55e00"}, ...]')
    return make_classes([i["name"] for i in items], [i.get("colour") for i in items])


def natural_order(names: Iterable[str]) -> list[str]:
    """Class names in a predictable order: numerically when all are whole numbers, else alphabetically."""
    unique = sorted(set(names))
    if unique and all(re.fullmatch(r"-?\d+", n) for n in unique):
        return sorted(unique, key=int)
    return sorted(unique, key=lambda n: (n.lower(), n))


def class_names(classes: Sequence[ClassSpec]) -> tuple[str, ...]:
    """The names of ``classes``, in order."""
    return tuple(c.name for c in classes)
