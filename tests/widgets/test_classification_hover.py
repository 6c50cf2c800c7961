"""Explain on hover: one explanation at a time, the newest object under the cursor next, stale results dropped."""
from __future__ import annotations

import threading

from napari_dlmicro.widgets._classify_hover import HoverExplainer


def test_an_explanation_for_an_object_the_cursor_left_is_dropped_and_the_newest_follows(qtbot):
    started, release, shown = [], {1: threading.Event(), 2: threading.Event()}, []

    def make_job(label):
        def job(token):
            started.append(label)
            release[label].wait(30)  # still computing while the cursor moves on
            return f"why {label}"
            yield

        return job

    hover = HoverExplainer(make_job, shown.append, lambda handle: handle)
    hover.moved_to(1)
    qtbot.waitUntil(lambda: started == [1], timeout=10_000)
    hover.moved_to(2)  # while object 1 is being explained
    hover.moved_to(2)
    release[2].set()
    release[1].set()
    qtbot.waitUntil(lambda: started == [1, 2] and not hover.busy, timeout=10_000)
    assert shown == ["why 2"] and hover.shown == 2  # object 1's explanation came too late to be shown

    hover.moved_to(0)
    hover.moved_to(2)  # back on the object shown: nothing to compute
    assert not hover.busy and started == [1, 2]
