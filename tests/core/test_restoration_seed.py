"""The seed of a restoration run fixes its network's start, whatever ran before it in the process."""
from __future__ import annotations

import torch

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.models.restoration.prepare import prepare_training
from napari_dlmicro.core.models.restoration.settings import TrainSettings


def _start(seed: int, kind: str = "care") -> dict[str, torch.Tensor]:
    noisy, clean = noisy_nuclei_arrays()
    settings = TrainSettings(kind=kind, patch=32, filters=8, seed=seed, device="cpu")
    targets = [clean[:64, :64]] if kind == "care" else None
    return prepare_training([noisy[:64, :64]], targets, settings).model.net.state_dict()


def test_one_seed_gives_one_start_and_another_seed_another():
    first = _start(0)
    torch.rand(1000)  # whatever else drew from torch's generator meanwhile
    again, other = _start(0), _start(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    n2v, n2v_again = _start(3, "n2v"), (torch.rand(10), _start(3, "n2v"))[1]
    assert all(torch.equal(n2v[k], n2v_again[k]) for k in n2v)
