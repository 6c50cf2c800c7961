"""A dock's first-time work (the optimiser's imports, the ONNX exporter's) runs once, in the background."""
from __future__ import annotations

import gc
import sys
import threading

from napari_dlmicro.widgets import _warm_up


def test_each_warm_up_task_runs_once_per_process_off_the_gui_thread(qtbot):
    ran = []

    def task() -> None:
        ran.append(threading.current_thread() is threading.main_thread())

    _warm_up.TASKS["test task"] = task
    try:
        _warm_up.warm_up(("test task",))
        _warm_up.warm_up(("test task",))  # a second dock: nothing again
        qtbot.waitUntil(lambda: not _warm_up.warming(), timeout=60_000)
    finally:
        del _warm_up.TASKS["test task"]
    assert ran == [False]


def test_a_failing_warm_up_leaves_the_work_to_the_job_quietly(qtbot):
    def broken() -> None:
        raise RuntimeError("no exporter here")

    _warm_up.TASKS["broken task"] = broken
    try:
        _warm_up.warm_up(("broken task",))
        qtbot.waitUntil(lambda: not _warm_up.warming(), timeout=60_000)
    finally:
        del _warm_up.TASKS["broken task"]


def test_the_denoising_dock_imports_the_optimiser_and_exporter_before_a_job_and_freezes_them(
        make_napari_viewer, qtbot):
    import torch

    from napari_dlmicro.widgets.denoise import DenoiseWidget

    viewer = make_napari_viewer()
    viewer.window.add_dock_widget(DenoiseWidget(viewer))
    qtbot.waitUntil(lambda: not _warm_up.warming(), timeout=120_000)
    qtbot.wait(50)  # the freeze the warm-up asks for runs from the event loop
    assert "torch._dynamo" in sys.modules and "torch.onnx" in sys.modules
    before = len(sys.modules)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # a job's first optimiser: nothing left to import
    assert len(sys.modules) == before
    assert len(gc.get_objects()) < gc.get_freeze_count() // 10  # what the imports made is frozen too
