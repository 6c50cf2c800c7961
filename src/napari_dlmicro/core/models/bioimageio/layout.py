"""A package tensor's axes against ours: we work in (batch, channel, spatial z-y-x), packages in their own order.

:class:`Layout` reads a tensor description once: which axis is which, the
channel count, the sizes an input may have (a minimum and a step, or one fixed
size) and the halo an output declares. It moves arrays between the two orders,
and names our order's axes with the package's own ids, for the processing steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_dlmicro.core.errors import UserError

ORDER = "zyx"


@dataclass(frozen=True)
class Layout:
    """The axes of one tensor of a package."""

    ids: tuple[str, ...]  # the package's axis ids, in the tensor's order
    batch: str | None  # id of the batch axis (None: no batch axis)
    channel: str | None  # id of the channel axis (None: one implicit channel)
    spatial: tuple[str, ...]  # ids of the spatial axes, in our order (z, y, x)
    n_channels: int | None
    min_size: tuple[int, ...]  # per spatial axis (ours), inputs only
    step: tuple[int, ...]  # 0: the size is fixed at min_size
    halo: tuple[int, ...]  # per spatial axis, outputs only (0 if none declared)

    @property
    def ndim(self) -> int:
        return len(self.spatial)

    @property
    def names(self) -> list[str]:
        """Our order's axes named by the package's ids: batch, channel, spatial."""
        return [self.batch or "batch", self.channel or "channel", *self.spatial]

    def from_ours(self, x: np.ndarray) -> np.ndarray:
        """(batch, channel, spatial...) in our order, as the package's tensor."""
        ours = self.names
        src = x
        if self.channel is None:
            src = src[:, 0]
            ours = [n for n in ours if n != "channel"]
        if self.batch is None:
            src = src[0]
            ours = [n for n in ours if n != "batch"]
        return np.ascontiguousarray(np.transpose(src, [ours.index(a) for a in self.ids]))

    def to_ours(self, y: np.ndarray) -> np.ndarray:
        """The package's tensor as (batch, channel, spatial...) in our order."""
        ids = list(self.ids)
        if self.batch is None:
            y, ids = y[np.newaxis], ["batch", *ids]
        if self.channel is None:
            y, ids = y[np.newaxis], ["channel", *ids]
        want = [self.batch or "batch", self.channel or "channel", *self.spatial]
        return np.transpose(y, [ids.index(a) for a in want])

    def valid_size(self, axis: int, n: int) -> int:
        """The smallest size the network takes along spatial axis ``axis`` that is at least ``n``."""
        m, s = self.min_size[axis], self.step[axis]
        if s == 0:
            if n > m:
                raise UserError(f"this model takes tiles of exactly {m} pixels along {self.spatial[axis]}",
                                f"set the tile size to {m} or less")
            return m
        return m if n <= m else m + -(-(n - m) // s) * s


def _spatial_order(ids: list[str]) -> tuple[str, ...]:
    if all(a in ORDER for a in ids):
        return tuple(sorted(ids, key=ORDER.index))
    return tuple(ids)  # ids other than z, y, x: keep the tensor's order


def read_layout(tensor: Any, inputs: dict[str, Any] | None = None) -> Layout:
    """The :class:`Layout` of a v0.5 tensor description (``inputs``: the input tensors, for size references)."""
    ids, batch, channel, n_channels, space = [], None, None, None, {}
    for axis in tensor.axes:
        aid, kind = str(axis.id), str(axis.type)
        ids.append(aid)
        if kind == "batch":
            batch = aid
        elif kind == "channel":
            channel, n_channels = aid, len(axis.channel_names)
        elif kind == "space":
            space[aid] = axis
        else:
            raise UserError(f"the tensor '{tensor.id}' has a {kind} axis ('{aid}'), which napari-dlmicro does not "
                            "feed", "use a model whose tensors have batch, channel and spatial axes only")
    if len(space) not in (2, 3):
        raise UserError(f"the tensor '{tensor.id}' has {len(space)} spatial axes", "use a 2D or 3D model")
    spatial = _spatial_order(list(space))
    mins, steps, halos = [], [], []
    for aid in spatial:
        axis = space[aid]
        size = getattr(axis, "size", None)
        if isinstance(size, int):
            mins.append(size)
            steps.append(0)
        elif hasattr(size, "step"):
            mins.append(int(size.min))
            steps.append(int(size.step))
        else:
            mins.append(1)
            steps.append(1)
        halo = int(getattr(axis, "halo", 0) or 0)
        if halo and inputs and hasattr(size, "tensor_id"):
            ref = next((a for a in inputs[str(size.tensor_id)].axes if str(a.id) == str(size.axis_id)), None)
            scale = float(getattr(axis, "scale", 1.0)) / float(getattr(ref, "scale", 1.0) or 1.0)
            halo = int(np.ceil(halo * scale))
        halos.append(halo)
    return Layout(tuple(ids), batch, channel, spatial, n_channels, tuple(mins), tuple(steps), tuple(halos))
