"""The machinery under every job: blocking calls that still report and stop, offloaded calls, progress clocks."""
from __future__ import annotations

import threading
import time

import pytest
import torch

from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import CancelToken, call_abandoning, cancellable_forward, run_blocking
from napari_dlmicro.core.runtime.events import Preview, Progress, ProgressClock, relay, run_to_end


def test_run_blocking_relays_events_and_returns_the_value():
    def work(emit):
        for i in range(3):
            emit(i)
        return "done"

    events = []
    assert run_to_end(run_blocking(work, CancelToken()), events.append) == "done" and events == [0, 1, 2]


def test_run_blocking_re_raises_the_call_s_error():
    def work(emit):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_to_end(run_blocking(work, CancelToken()))


def test_run_blocking_returns_at_a_cancel_while_the_call_still_blocks():
    release = threading.Event()
    token = CancelToken()

    def work(emit):
        release.wait(30)  # a library call that does not report for a long time
        return "late"

    job = run_blocking(work, token, poll_s=0.01)
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(job)
    release.set()


def test_offload_in_a_thread_answers_a_cancel_at_once():
    token = CancelToken()
    threading.Timer(0.05, token.cancel).start()
    with pytest.raises(Cancelled):
        offload.call(time.sleep, 30, token=token)
    assert offload.call(sum, [1, 2, 3]) == 6  # without a token: in place


def test_offload_in_the_helper_process_is_killed_by_a_cancel():
    offload.use_process_pool(True)
    try:
        assert offload.call(sum, [1, 2]) == 3
        token = CancelToken()
        threading.Timer(0.2, token.cancel).start()
        with pytest.raises(Cancelled):
            offload.call(time.sleep, 30, token=token)
        assert offload.call(sum, [4, 5]) == 9  # a fresh helper answers the next call
    finally:
        offload.use_process_pool(False)
        offload.shutdown()


def test_progress_clock_estimates_the_rest_from_the_rate():
    clock = ProgressClock(10, "steps")
    clock.start -= 2.0  # two seconds ago
    p = clock.tick(4)
    assert p.fraction == 0.4 and p.eta_s == pytest.approx(3.0, rel=0.1) and p.message == "steps"
    assert clock.tick(10).eta_s == 0.0 and clock.tick(0).eta_s is None


def test_relay_rescales_progress_and_passes_the_rest():
    def inner():
        yield Progress(1, 2)
        yield Preview(__import__("numpy").zeros((2, 2)), (slice(0, 2), slice(0, 2)))
        return 42

    seen = []
    assert run_to_end(relay(inner(), lambda ev: Progress(ev.done * 10, 20)), seen.append) == 42
    assert seen[0] == Progress(10, 20) and isinstance(seen[1], Preview)


def test_a_preview_region_is_always_slices():
    with pytest.raises(TypeError, match="tuple of slices"):
        Preview(__import__("numpy").zeros(2), (0,))


def test_a_network_shared_by_a_cancelled_job_and_a_new_one_stops_only_the_cancelled_one():
    """Cancel, then Run again at once: the first job's forward, winding down in the background, must not stop
    the second job's forward through the same network."""
    net = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(3)])
    first, second = CancelToken(), CancelToken()
    with cancellable_forward(net, first):
        first.cancel()
        outcome = {}

        def run_second():
            with cancellable_forward(net, second):
                outcome["out"] = net(torch.rand(2, 4))

        worker = threading.Thread(target=run_second)
        worker.start()
        worker.join()
        assert outcome["out"].shape == (2, 4)
        with pytest.raises(Cancelled):
            net(torch.rand(2, 4))


def test_call_abandoning_frees_the_caller_and_its_layers_still_check_the_callers_token():
    token = CancelToken()
    started = threading.Event()
    release = threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return 1

    timer = threading.Timer(0.05, token.cancel)
    timer.start()
    with pytest.raises(Cancelled):
        call_abandoning(slow, token=token)
    release.set()
    assert started.is_set() and call_abandoning(lambda: 2, token=CancelToken()) == 2
