"""An optimiser update that a cancel can stop between parts of a big network.

One AdamW update of Cellpose-SAM's 300 million weights takes about a second
on a CPU, and the first one, which allocates the moment estimates, six. The
weights are split into parts of about :data:`PART_BYTES`, each with its own
optimiser, and the token is checked before each part's update, so a cancel
waits for one part at most. A cancelled update leaves some parts stepped and
the others not; a cancelled run keeps its last checkpoint, not these weights.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from napari_dlmicro.core.runtime.cancel import CancelToken

PART_BYTES = 64 * 2**20


class ChunkedOptimizer:
    """Several optimisers over consecutive parts of the parameters, stepped one after another."""

    def __init__(self, params: Iterable[torch.nn.Parameter], make: Callable[[list], torch.optim.Optimizer],
                 token: CancelToken, part_bytes: int = PART_BYTES) -> None:
        parts: list[list[torch.nn.Parameter]] = [[]]
        size = 0
        for p in params:
            if parts[-1] and size + p.numel() * p.element_size() > part_bytes:
                parts.append([])
                size = 0
            parts[-1].append(p)
            size += p.numel() * p.element_size()
        self.parts = [make(part) for part in parts if part]
        self.token = token

    @property
    def param_groups(self) -> list[dict]:
        """Every part's parameter groups (setting ``lr`` on each sets the whole optimiser's)."""
        return [group for part in self.parts for group in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every part."""
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """Update part after part; a cancel raises :class:`Cancelled` before the next part."""
        for part in self.parts:
            self.token.check()
            part.step()
