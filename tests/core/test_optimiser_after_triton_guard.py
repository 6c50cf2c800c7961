"""Restoration training makes its optimiser only once triton's LLVM is kept out of the process.

The first optimiser of a process imports ``torch._dynamo``, which loads triton's
LLVM; beside Mesa's (napari's software OpenGL) that crashes the process, as the
Denoising dock's first CARE or N2V training did when its trainer made the
optimiser before :func:`fit` had set triton aside.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
from napari_dlmicro.core.runtime import llvm
from napari_dlmicro.core.runtime.events import run_to_end

MISSING = object()


@pytest.mark.parametrize("kind", ["n2v", "care"])
def test_the_optimiser_is_made_after_triton_is_set_aside(monkeypatch, kind):
    seen = []
    real_adam = torch.optim.Adam

    class WatchedAdam(real_adam):
        def __init__(self, *args, **kwargs):
            seen.append(sys.modules.get("triton", MISSING))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(llvm, "llvm_loaded", lambda: True)  # as in napari under Xvfb
    monkeypatch.setattr(torch.optim, "Adam", WatchedAdam)
    before = sys.modules.pop("triton", MISSING)
    try:
        image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
        settings = TrainSettings(kind=kind, epochs=1, steps_per_epoch=1, patch=32, batch_size=2, device="cpu")
        run_to_end(train_restoration([image], [image] if kind == "care" else None, settings))
    finally:
        sys.modules.pop("triton", None)
        if before is not MISSING:
            sys.modules["triton"] = before
    assert seen and all(entry is None for entry in seen)  # triton marked absent before any optimiser
