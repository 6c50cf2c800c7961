"""The compute core imports neither napari nor Qt, nor any part of the package outside ``core``."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import napari_dlmicro.core

CORE = Path(napari_dlmicro.core.__file__).parent
# napari's event libraries count too: the core reports through its own typed events and plain callbacks
GUI = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "superqt", "vispy", "psygnal", "app_model")


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


def test_importing_the_core_loads_no_gui_library():
    # any core module runs the package's own __init__ first, which reaches much of the core: check what loads
    code = ("import sys, napari_dlmicro.core.runtime.devices, napari_dlmicro.core.jobs.train; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({GUI!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
