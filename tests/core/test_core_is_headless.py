"""The compute core imports neither napari nor Qt, nor any part of the package outside ``core``."""
from __future__ import annotations

import ast
from pathlib import Path

import napari_dlmicro.core

CORE = Path(napari_dlmicro.core.__file__).parent
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy")


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside functions."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_core_modules_import_nothing_outside_the_core():
    wrong = []
    for path in sorted(CORE.rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            outside = name.startswith("napari_dlmicro") and not name.startswith("napari_dlmicro.core")
            if top in GUI or outside:
                wrong.append(f"{path.relative_to(CORE)}: {name}")
    assert not wrong, wrong
