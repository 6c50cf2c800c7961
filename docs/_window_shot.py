"""What both screenshot scripts do at the end: let napari draw, save the whole window, close."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from qtpy.QtWidgets import QApplication

# the docks restore remembered settings: a screenshot shows the defaults, never this machine's last run
os.environ["DLMICRO_CONFIG"] = tempfile.mkdtemp(prefix="dlmicro-shot-")


def save_window(viewer, name: str) -> Path:
    """Process pending events (the last tiles and plots), save ``docs/<name>`` and close the viewer."""
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
    out = Path(__file__).with_name(name)
    viewer.screenshot(str(out), canvas_only=False)
    viewer.close()
    return out
