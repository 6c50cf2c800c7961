"""The one training loop: budget, stop (finish the step, keep the best, tune, save) and cancel (end now)."""
from __future__ import annotations

import pytest
import torch

from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Metric, Metrics, run_to_end
from napari_dlmicro.core.training.budget import Budget
from napari_dlmicro.core.training.fit import Trainer, fit
from napari_dlmicro.core.training.result import StopReason


class Toy(Trainer):
    """One weight walking down; validation scores it; the best is the lowest validation loss."""

    kind = "toy"
    steps_per_epoch = 5

    def __init__(self, losses=None, stop_at=None, cancel_at=None, token=None):
        self.w = torch.zeros(1)
        self.optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        self.losses = losses or {}
        self.stop_at, self.cancel_at, self.token = stop_at, cancel_at, token
        self.saved, self.finished, self.n = [], 0, 0

    def step(self, fraction):
        self.n += 1
        self.w += 1
        if self.stop_at == self.n:
            self.token.stop()
        if self.cancel_at == self.n:
            self.token.cancel()
        return float(self.n)

    def validate(self, token):
        return {Metric.VAL_LOSS: self.losses.get(int(self.w.item()), 10.0 - self.w.item())}

    def weights(self):
        return {"w": self.w}

    def load_weights(self, state):
        self.w = state["w"].clone()

    def finish(self, token, history):
        self.finished += 1
        return {"tuned": 1.0}
        yield

    def save(self, folder, history, best, info):
        self.saved.append((float(self.w.item()), info["stopped"], len(history)))

    def model(self):
        return float(self.w.item())


def test_an_epoch_budget_validates_every_epoch_and_keeps_the_best(tmp_path):
    toy = Toy(losses={5: 1.0, 10: 3.0, 15: 2.0})
    events = []
    result = run_to_end(fit(toy, Budget(epochs=3, steps_per_epoch=5), CancelToken(), tmp_path / "m"), events.append)
    assert result.stopped is StopReason.BUDGET and result.steps == 15
    assert [row[Metric.STEP] for row in result.history] == [5, 10, 15]
    assert result.model == 5.0 and result.best[Metric.STEP] == 5 and result.best["tuned"] == 1.0
    assert toy.finished == 1 and toy.saved[-1] == (5.0, "budget", 3)
    assert any(isinstance(e, Metrics) and Metric.STEP_LOSS in e.values for e in events)


def test_stop_finishes_the_step_validates_tunes_and_saves(tmp_path):
    token = CancelToken()
    toy = Toy(stop_at=7, token=token)
    result = run_to_end(fit(toy, Budget(epochs=10, steps_per_epoch=5), token, tmp_path / "m"))
    assert result.stopped is StopReason.STOPPED and result.steps == 7
    assert result.history[-1][Metric.STEP] == 7  # the weights reached were validated too
    assert toy.finished == 1 and toy.saved[-1][1] == "stopped"


def test_cancel_ends_at_once_with_the_best_checkpoint(tmp_path):
    token = CancelToken()
    toy = Toy(cancel_at=7, token=token)
    result = run_to_end(fit(toy, Budget(epochs=10, steps_per_epoch=5), token, tmp_path / "m"))
    assert result.stopped is StopReason.CANCELLED and result.steps == 7
    assert [row[Metric.STEP] for row in result.history] == [5]  # no validation after the cancel
    assert toy.finished == 0 and result.model == 5.0  # nothing tuned; the checkpoint's weights
    assert toy.saved[-1][1] == "cancelled"


def test_cancel_before_the_first_step_saves_nothing(tmp_path):
    token = CancelToken()
    token.cancel()
    toy = Toy()
    result = run_to_end(fit(toy, Budget(epochs=2, steps_per_epoch=5), token, tmp_path / "m"))
    assert result.stopped is StopReason.CANCELLED and result.folder is None and not toy.saved


def test_a_spent_budget_can_end_on_the_last_weights(tmp_path):
    toy = Toy(losses={5: 1.0, 10: 3.0})
    toy.keep_last_at_budget = True
    result = run_to_end(fit(toy, Budget(epochs=2, steps_per_epoch=5), CancelToken(), tmp_path / "m"))
    assert result.model == 10.0


def test_the_checkpoint_is_written_before_its_row_is_reported(tmp_path):
    toy = Toy()
    job = fit(toy, Budget(epochs=2, steps_per_epoch=5), CancelToken(), tmp_path / "m")
    for ev in job:
        if isinstance(ev, Metrics) and Metric.VAL_LOSS in ev.values:
            assert toy.saved and toy.saved[-1][0] == ev.values[Metric.STEP]
            break


@pytest.mark.parametrize("bad", [dict(minutes=0), dict(epochs=0), dict()])
def test_a_budget_must_be_positive(bad):
    from napari_dlmicro.core.errors import UserError

    with pytest.raises(UserError):
        Budget(**bad)


def test_a_cancel_does_not_write_a_big_network_and_keeps_its_checkpoint(tmp_path, monkeypatch):
    from napari_dlmicro.core.training import fit as fit_module

    monkeypatch.setattr(fit_module, "QUICK_SAVE_BYTES", 0)  # every network is "big": writing it takes seconds
    token = CancelToken()
    toy = Toy(cancel_at=7, token=token)
    result = run_to_end(fit(toy, Budget(epochs=10, steps_per_epoch=5), token, tmp_path / "m"))
    assert result.stopped is StopReason.CANCELLED and result.steps == 7
    assert [s[1] for s in toy.saved] == ["checkpoint"]  # the step-5 checkpoint; nothing written at the cancel
    assert result.folder == tmp_path / "m" and result.model == 5.0


def test_a_cancel_before_a_big_networks_first_checkpoint_writes_nothing(tmp_path, monkeypatch):
    from napari_dlmicro.core.training import fit as fit_module

    monkeypatch.setattr(fit_module, "QUICK_SAVE_BYTES", 0)
    token = CancelToken()
    toy = Toy(cancel_at=3, token=token)
    events = []
    result = run_to_end(fit(toy, Budget(epochs=10, steps_per_epoch=5), token, tmp_path / "m"), events.append)
    assert result.stopped is StopReason.CANCELLED and result.folder is None and not toy.saved
    assert any("no model was saved" in getattr(e, "message", "") for e in events)


def test_a_cancel_does_not_wait_for_a_big_networks_checkpoint_write(tmp_path, monkeypatch):
    import threading

    from napari_dlmicro.core.training import fit as fit_module

    monkeypatch.setattr(fit_module, "QUICK_SAVE_BYTES", 0)
    token = CancelToken()
    writing, release = threading.Event(), threading.Event()

    class SlowToWrite(Toy):
        def save(self, folder, history, best, info):
            writing.set()
            release.wait(30)  # a write of seconds (Cellpose-SAM: 1.2 GB)
            super().save(folder, history, best, info)

    toy = SlowToWrite()
    threading.Thread(target=lambda: (writing.wait(30), token.cancel()), daemon=True).start()
    events = []
    result = run_to_end(fit(toy, Budget(epochs=10, steps_per_epoch=5), token, tmp_path / "m"), events.append)
    assert not release.is_set() and not toy.saved  # ended while the first checkpoint was still being written
    assert result.stopped is StopReason.CANCELLED and result.steps == 5 and result.folder == tmp_path / "m"
    assert any("still being written" in getattr(e, "message", "") for e in events)
    release.set()
    for _ in range(100):
        if toy.saved:
            break
        threading.Event().wait(0.05)
    assert [s[1] for s in toy.saved] == ["checkpoint"]  # the write ended behind the cancel, whole
