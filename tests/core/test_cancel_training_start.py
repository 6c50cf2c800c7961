"""A cancel while a training run still prepares its data (validation targets of big images) ends the run."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.models.stardist import train as stardist_train
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import run_to_end


def test_a_cancel_while_the_validation_targets_are_made_ends_the_training(monkeypatch):
    preparing, release = threading.Event(), threading.Event()

    def slow_patches(*args, **kwargs):
        preparing.set()
        release.wait(30)
        return None

    monkeypatch.setattr(stardist_train, "validation_patches", slow_patches)
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20] = 1
    image = (labels > 0).astype(np.float32)
    token = CancelToken()
    threading.Thread(target=lambda: preparing.wait(30) and token.cancel(), daemon=True).start()
    with pytest.raises(Cancelled):
        run_to_end(stardist_train.train_stardist([image], [labels], [image], [labels],
                                                 StarDistTraining(filters=8, patch=32, batch=2, epochs=1), token))
    assert not release.is_set()  # the run ended while its data was still being prepared
    release.set()


def test_a_cancel_while_care_checks_its_pairs_for_fresh_noise_ends_the_training(monkeypatch):
    from napari_dlmicro.core.data import renoise
    from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration

    checking, release = threading.Event(), threading.Event()

    def slow_check(*args):
        checking.set()
        release.wait(30)
        return 1.0, "checked"

    monkeypatch.setattr(renoise, "auto_share", slow_check)
    rng = np.random.default_rng(0)
    target = rng.random((64, 64)).astype(np.float32)
    token = CancelToken()
    threading.Thread(target=lambda: checking.wait(30) and token.cancel(), daemon=True).start()
    with pytest.raises(Cancelled):
        run_to_end(train_restoration([target + 0.1], [target], TrainSettings(kind="care", patch=32, epochs=1,
                                                                             device="cpu"), token))
    assert not release.is_set()
    release.set()
