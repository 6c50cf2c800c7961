"""How one of our models reads as a bioimage.io model: its tensors, axes, processing and test outputs.

:class:`Described` is what every kind supplies to the exporter (see
:mod:`.describe_kinds` for StarDist, the semantic U-Net and Noise2Void/CARE):
the network to package and the keyword arguments that rebuild it, the spatial
size rules (what the network divides by, the halo of context each output
needs), the declared preprocessing, the output tensor, and the reference
output of a test input computed by our own implementation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bioimageio.spec.model import v0_5
from torch import nn

INPUT_ID = "raw"
SPATIAL = "zyx"


def spatial_ids(ndim: int) -> list[str]:
    """The spatial axis ids of a ``ndim``-D tensor: ``y, x`` or ``z, y, x``."""
    return list(SPATIAL[3 - ndim:])


def channel_names(n: int, prefix: str = "channel") -> list[str]:
    """Channel names for ``n`` channels."""
    return [f"{prefix}{i}" for i in range(n)]


def min_size(div: int, halo: int) -> int:
    """The smallest input size along an axis: a multiple of ``div`` with at least one output pixel inside the halo."""
    return int(-(-(2 * halo + 1) // div) * div)


@dataclass
class Described:
    """One model as the exporter needs it (filled by :mod:`.describe_kinds`)."""

    family: str  # "stardist" | "semantic" | "restoration": the network builder of :mod:`.entry`
    kind: str  # our kind: stardist, semantic, n2v, care
    title: str  # "StarDist 2D", "Noise2Void", ...
    net: nn.Module  # the network as packaged (CPU, eval), our weights loaded
    kwargs: dict[str, Any]  # build_network(**kwargs) rebuilds ``net``
    ndim: int
    n_channels: int
    div_by: tuple[int, ...]
    halo: tuple[int, ...]  # input pixels of context an output pixel needs, per spatial axis
    preprocessing: list[Any]
    citations_key: str
    tags: list[str]
    description: str
    config: dict[str, Any] = field(default_factory=dict)  # under config.napari_dlmicro
    stardist_config: dict[str, Any] | None = None  # under config.stardist
    attachments: dict[str, Path] = field(default_factory=dict)  # file name in the package -> file here

    @property
    def sizes(self) -> tuple[int, ...]:
        """The smallest input size per spatial axis."""
        return tuple(min_size(d, h) for d, h in zip(self.div_by, self.halo))

    def input_tensor(self, test_file: Path) -> v0_5.InputTensorDescr:
        """The input tensor: batch, channel, spatial axes of parameterised size; the declared preprocessing."""
        axes: list[Any] = [v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=channel_names(self.n_channels))]
        for a, d, m in zip(spatial_ids(self.ndim), self.div_by, self.sizes):
            axes.append(v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=m, step=d)))
        return v0_5.InputTensorDescr(
            id=v0_5.TensorId(INPUT_ID), description="the image, in its own units", axes=axes,
            test_tensor=v0_5.FileDescr(source=test_file), data=v0_5.IntervalOrRatioDataDescr(type="float32"),
            preprocessing=list(self.preprocessing))

    def space_output_axes(self) -> list[Any]:
        """Output spatial axes of the input's size, each with its halo."""
        return [v0_5.SpaceOutputAxisWithHalo(
            id=v0_5.AxisId(a), halo=int(h),
            size=v0_5.SizeReference(tensor_id=v0_5.TensorId(INPUT_ID), axis_id=v0_5.AxisId(a)))
            for a, h in zip(spatial_ids(self.ndim), self.halo)]

    def output_tensor(self, test_file: Path) -> v0_5.OutputTensorDescr:  # pragma: no cover - per kind
        raise NotImplementedError

    def reference(self, raw: np.ndarray) -> np.ndarray:  # pragma: no cover - per kind
        """The output tensor for one test input (batch, channel, spatial...), by our own implementation."""
        raise NotImplementedError

    def cover_output(self, output: np.ndarray) -> tuple[np.ndarray, str]:  # pragma: no cover - per kind
        """The output as an image for the cover (spatial..., [C]) and how to colour it (labels, classes, image)."""
        raise NotImplementedError


def scale_range(ndim: int, low: float, high: float) -> v0_5.ScaleRangeDescr:
    """Percentile normalisation per channel over the spatial axes of each sample, as our jobs normalise."""
    return v0_5.ScaleRangeDescr(kwargs=v0_5.ScaleRangeKwargs(
        axes=[v0_5.AxisId(a) for a in spatial_ids(ndim)], min_percentile=low, max_percentile=high, eps=1e-20))


def percentile_normalised(raw: np.ndarray, low: float, high: float) -> np.ndarray:
    """(C, spatial...) mapped as :func:`scale_range` declares it (float32)."""
    axes = tuple(range(1, raw.ndim))
    lo = np.percentile(raw, low, axis=axes, keepdims=True)
    hi = np.percentile(raw, high, axis=axes, keepdims=True)
    return ((raw - lo) / (hi - lo + 1e-20)).astype(np.float32)


def fit_test_input(image: np.ndarray, sizes: tuple[int, ...], div_by: tuple[int, ...],
                   largest: tuple[int, ...]) -> np.ndarray:
    """A test input (C, spatial...) from ``image`` (C, spatial...): per axis a central crop of at most
    ``largest``, on a multiple of ``div_by``, at least ``sizes`` (mirrored at the end where the image is smaller)."""
    out = np.asarray(image, np.float32)
    for axis, (n, m, d, most) in enumerate(zip(image.shape[1:], sizes, div_by, largest), start=1):
        target = max(m, min(n, most) // d * d)
        if n > target:
            start = (n - target) // 2
            out = out.take(np.arange(start, start + target), axis=axis)
        elif n < target:
            pad = [(0, 0)] * out.ndim
            pad[axis] = (0, target - n)
            out = np.pad(out, pad, mode="symmetric")
    return np.ascontiguousarray(out)
