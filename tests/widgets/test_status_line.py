"""The docks' status line: a new text never asks napari's window for a new layout."""
from __future__ import annotations

from napari_dlmicro.widgets._status_line import StatusLine


def test_size_does_not_follow_the_text(qtbot):
    line = StatusLine("idle")
    qtbot.addWidget(line)
    hint, minimum = line.sizeHint().height(), line.minimumSizeHint().height()
    long = "step 1200, loss 0.123 — ETA 4 min 10 s; " * 6
    line.setText(long)
    assert line.sizeHint().height() == hint and line.minimumSizeHint().height() == minimum
    assert line.sizePolicy().horizontalPolicy() == line.sizePolicy().Policy.Ignored
    assert line.text() == long and line.toolTip() == long  # all of it is readable in the tooltip
