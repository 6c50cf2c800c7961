"""The optimiser in parts: the same update as one optimiser, and a cancel between its parts."""
from __future__ import annotations

import pytest
import torch

from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.training.chunked_optimizer import ChunkedOptimizer


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _train(net, opt, steps=3):
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()


def test_parts_update_exactly_as_one_optimizer():
    one, parts = _net(), _net()
    _train(one, torch.optim.AdamW(one.parameters(), lr=1e-2, weight_decay=0.1))
    chunked = ChunkedOptimizer(parts.parameters(), lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
                               CancelToken(), part_bytes=200)
    assert len(chunked.parts) > 1
    _train(parts, chunked)
    for a, b in zip(one.parameters(), parts.parameters()):
        assert torch.allclose(a, b)


def test_setting_the_rate_reaches_every_part():
    net = _net()
    chunked = ChunkedOptimizer(net.parameters(), lambda p: torch.optim.SGD(p, lr=1.0), CancelToken(), part_bytes=1)
    for group in chunked.param_groups:
        group["lr"] = 0.5
    assert all(g["lr"] == 0.5 for part in chunked.parts for g in part.param_groups)


def test_a_cancel_stops_the_update_before_the_next_part():
    net = _net()
    token = CancelToken()
    chunked = ChunkedOptimizer(net.parameters(), lambda p: torch.optim.SGD(p, lr=1.0), token, part_bytes=1)
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.ones(1, 8)).sum().backward()
    first = chunked.parts[0]
    original = first.step

    def step_then_cancel(*args, **kwargs):
        out = original(*args, **kwargs)
        token.cancel()  # as if Cancel were clicked during the first part's update
        return out

    first.step = step_then_cancel
    with pytest.raises(Cancelled):
        chunked.step()
    changed = [not torch.equal(a, p) for a, p in zip(before, net.parameters())]
    assert changed[0] and not any(changed[1:])
