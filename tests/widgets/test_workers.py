"""Jobs on napari's threads: events reach the dock, errors become messages, a cancel frees the dock at once."""
from __future__ import annotations

import logging
import threading

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.runtime.events import Progress
from napari_dlmicro.workers import start_job


def test_events_and_the_result_reach_the_gui(qtbot):
    def job(token):
        for i in range(3):
            yield Progress(i + 1, 3, "step")
        return "value"

    seen, result, finished = [], [], []
    handle = start_job(job, title="test", on_event=seen.append, on_result=result.append, on_finished=finished.append)
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    assert [e.done for e in seen] == [1, 2, 3] and result == ["value"] and finished == [False]
    assert handle.finished and not handle.cancelled


def _errors_of(job, qtbot, caplog) -> list[str]:
    """Run a failing job to its end with the workers' log captured; the messages its dock was given."""
    errors, finished = [], []
    with caplog.at_level(logging.INFO, logger="napari_dlmicro.workers"):
        start_job(job, title="test", on_error=errors.append, on_finished=finished.append)
        qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    return errors


def test_a_user_error_becomes_the_message_not_a_traceback(qtbot, caplog):
    def job(token):
        raise UserError("the image is empty", "open another")
        yield

    errors = _errors_of(job, qtbot, caplog)
    assert errors == ["the image is empty. Open another."]
    assert "the image is empty" in caplog.text and "Traceback" not in caplog.text  # nor in the terminal


def test_an_unexpected_error_is_logged_with_its_traceback(qtbot, caplog):
    def job(token):
        raise ZeroDivisionError("a bug")
        yield

    errors = _errors_of(job, qtbot, caplog)
    assert errors and errors[0].startswith("unexpected ZeroDivisionError: a bug")
    assert "Traceback" in caplog.text


def test_cancel_frees_the_dock_at_once_and_drops_late_events(qtbot):
    release = threading.Event()

    def job(token):
        yield Progress(0, 2, "started")
        release.wait(30)  # one long unit of work, still running when the user cancels
        yield Progress(1, 2, "late")
        token.check()
        return "never"

    seen, finished, results = [], [], []
    handle = start_job(job, title="test", on_event=seen.append, on_finished=finished.append, on_result=results.append)
    qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    handle.cancel()
    assert finished == [True] and handle.finished  # idle now, before the job has ended
    release.set()
    qtbot.waitUntil(lambda: handle.thread_done, timeout=10_000)
    assert [e.message for e in seen] == ["started"] and finished == [True] and results == []


def test_a_job_without_a_bar_stays_out_of_the_activity_dock(qtbot):
    def job(token):
        yield Progress(1, 2, "half")
        return "value"

    seen, result, finished = [], [], []
    handle = start_job(job, title="quiet", on_event=seen.append, on_result=result.append,
                       on_finished=finished.append, bar=False)
    assert handle._bar is None  # not even opened at the start
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    assert handle._bar is None and [e.done for e in seen] == [1] and result == ["value"]
