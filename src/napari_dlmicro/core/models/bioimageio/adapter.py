"""A package's network in our calling convention: (batch, channel, spatial...) in, outputs the same way out.

The input is padded at its end to the next size the package accepts (its
minimum and step), moved into the package's axis order, run, moved back, and
each output cropped to the part that belongs to the unpadded input (outputs on
a coarser grid, as StarDist's, are cropped in proportion). Pixel-wise
postprocessing steps may run here, tile by tile.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_dlmicro.core.models.bioimageio import processing
from napari_dlmicro.core.models.bioimageio.layout import Layout
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken

if TYPE_CHECKING:  # the runner only calls it; importing weights would import bioimageio.spec (seconds)
    from napari_dlmicro.core.models.bioimageio.weights import PackageNet


class PackageRunner:
    """Runs ``net`` on arrays in our order; ``steps`` (pixel-wise postprocessing) applied to its first output."""

    def __init__(self, net: PackageNet, inp: Layout, out: Layout, steps: Sequence[Any] = ()) -> None:
        self.net, self.inp, self.out, self.steps = net, inp, out, list(steps)
        self.choice = self.last_engine = net.engine

    def __call__(self, x: np.ndarray, token: CancelToken = NEVER) -> tuple[np.ndarray]:
        """The package's first output for ``x``; ``token`` is checked before and after the forward pass."""
        token.check()
        sizes = x.shape[2:]
        valid = [self.inp.valid_size(i, n) for i, n in enumerate(sizes)]
        if any(v != n for v, n in zip(valid, sizes)):
            pad = [(0, 0), (0, 0)] + [(0, v - n) for v, n in zip(valid, sizes)]
            x = np.pad(x, pad, mode="symmetric")
        y = self.out.to_ours(self.net(self.inp.from_ours(x))[0])
        token.check()
        keep = tuple(slice(0, max(1, int(round(m * n / v)))) for m, n, v in zip(y.shape[2:], sizes, valid))
        y = np.ascontiguousarray(y[(slice(None), slice(None)) + keep], np.float32)
        if self.steps:
            y = processing.apply(self.steps, y, self.out.names)
        return (y,)
