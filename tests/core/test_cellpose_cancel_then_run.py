"""Cancel, then Run at once: a cancelled Cellpose pass still ending in the background does not stop the next one."""
from __future__ import annotations

import threading

import pytest
import torch

from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.models.cellpose.segmenter import _BatchReporter
from napari_dlmicro.core.runtime.cancel import CancelToken


def test_a_cancelled_runs_hooks_do_not_check_in_another_threads_pass():
    net = torch.nn.Linear(2, 2)
    old = CancelToken()
    attached, release = threading.Event(), threading.Event()

    def cancelled_run():
        reporter = _BatchReporter(lambda event: None, old, 1)
        with reporter.attached(net):
            attached.set()
            release.wait(30)  # its pass goes on in the background

    thread = threading.Thread(target=cancelled_run)
    thread.start()
    assert attached.wait(30)
    old.cancel()
    try:
        net(torch.zeros(1, 2))  # the next run's pass, in another thread: not cancelled by the old token
    finally:
        release.set()
        thread.join(30)


def test_a_runs_own_hooks_still_stop_its_pass():
    net = torch.nn.Linear(2, 2)
    token = CancelToken()
    reporter = _BatchReporter(lambda event: None, token, 1)
    token.cancel()
    with reporter.attached(net), pytest.raises(Cancelled):
        net(torch.zeros(1, 2))
