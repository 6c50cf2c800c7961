"""Packages that segment, run through our own segmenters: StarDist's path (tiles, NMS, labels) for packages
with StarDist's postprocessing, the semantic path (a class per pixel) for probability and boundary maps.

The package's network stands in for ours: a stand-in module carries what the
segmenters read of a network (dimensions, channels, grid, what sizes divide,
the context each output needs), and a :class:`.adapter.PackageRunner` runs the
forward pass. The declared preprocessing runs over the whole image (the
sample) before it is tiled, so the segmentation job passes raw pixels
(``ModelInfo.normalises``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.bioimageio import processing
from napari_dlmicro.core.models.bioimageio.adapter import PackageRunner
from napari_dlmicro.core.models.bioimageio.layout import Layout
from napari_dlmicro.core.models.semantic.network import SemanticModel
from napari_dlmicro.core.models.semantic.segmenter import SemanticSegmenter
from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job

DEFAULT_HALO = 32  # context read around each tile when a package declares no halo


@dataclass(frozen=True)
class StandInStarDistConfig:
    """What :class:`StarDistSegmenter` reads of its network's configuration."""

    ndim: int
    n_channels: int
    n_rays: int
    grid: tuple[int, ...]
    div_by: tuple[int, ...]
    receptive_radius: tuple[int, ...]


@dataclass(frozen=True)
class StandInUNetConfig:
    """What :class:`SemanticSegmenter` reads of its U-Net's configuration."""

    ndim: int
    in_channels: int
    div_by: tuple[int, ...]


class StandInNet(nn.Module):
    """A network's place in a segmenter, whose forward pass the package runs instead."""

    def __init__(self, config: Any = None, unet_config: Any = None, n_classes: int = 0) -> None:
        super().__init__()
        self.config, self.unet_config, self.n_classes = config, unet_config, n_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("a package's network runs through its runner")


def _sample(image: np.ndarray, inp: Layout, steps) -> np.ndarray:
    """Our (spatial..., C) block, preprocessed as the package declares, as (spatial..., C) float32."""
    x = np.moveaxis(np.asarray(image, np.float32), -1, 0)[None]
    x = processing.apply(steps, x, inp.names)
    return np.nan_to_num(np.moveaxis(x[0], 0, -1).astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def _check_channels(image: np.ndarray, name: str, n: int) -> None:
    if image.shape[-1] != n:
        raise UserError(f"{name} takes {n} channel(s) but the input has {image.shape[-1]}",
                        "pick the channel(s) it was trained on (dock: Channel; CLI: --channel N)")


class _StarDistOutputs:
    """The package's one StarDist tensor as our network's two outputs: probability, distances."""

    def __init__(self, runner: PackageRunner) -> None:
        self.runner, self.choice, self.last_engine = runner, runner.choice, runner.last_engine

    def __call__(self, x: np.ndarray, token: CancelToken = NEVER) -> tuple[np.ndarray, np.ndarray]:
        (prob_dist,) = self.runner(x, token)
        return prob_dist[:, :1], prob_dist[:, 1:]


class PackageStarDist(StarDistSegmenter):
    """A package with StarDist's postprocessing, segmented by our StarDist path with its thresholds."""

    def __init__(self, runner: PackageRunner, inp: Layout, steps: list, post: Any, *, name: str, source: str,
                 views: int = 1, rays: Any = None) -> None:
        grid = tuple(int(g) for g in post.grid)
        if any(s == 0 for s in inp.step):
            raise UserError(f"{name} takes images of one fixed size only", "use a StarDist package that takes "
                            "images of any size (a parameterised size in its description)")
        div = tuple(int(np.lcm(s, g)) for s, g in zip(inp.step, grid))
        halo = tuple(h or DEFAULT_HALO for h in runner.out.halo)
        config = StandInStarDistConfig(inp.ndim, int(inp.n_channels or 1), int(post.n_rays), grid, div, halo)
        border = post.b if isinstance(post.b, int) else int(post.b[0][0])
        super().__init__(StandInNet(config), name=name, source=source, prob_thresh=float(post.prob_threshold),
                         nms_thresh=float(post.nms_threshold), rays=rays, seed_border=border, views=views)
        self.runner = _StarDistOutputs(runner)
        self.inp, self.steps = inp, steps
        self.info.normalises = True
        self.info.notes = f"bioimage.io package, {runner.net.format} weights"

    def use_engine(self, engine: str | None) -> PackageStarDist:
        """The package runs with its own weights' runtime (see :mod:`.weights`)."""
        return self

    def segment(self, image: np.ndarray, settings: dict[str, Any], token: CancelToken, tile: int | None = None) -> Job:
        """Labels of one raw block (spatial..., C): the declared preprocessing over all of it, then StarDist."""
        _check_channels(image, self.info.name, self.info.n_channels)
        return (yield from super().segment(_sample(image, self.inp, self.steps), settings, token, tile))


class PackageSemantic(SemanticSegmenter):
    """A package of probability (or boundary) maps: the class of each pixel, tile by tile."""

    def __init__(self, runner: PackageRunner, inp: Layout, steps: list, n_classes: int, *, name: str,
                 source: str) -> None:
        config = StandInUNetConfig(inp.ndim, int(inp.n_channels or 1), tuple(max(1, s) for s in inp.step))
        super().__init__(SemanticModel(StandInNet(unet_config=config, n_classes=n_classes), name), source=source)
        self.runner, self.inp, self.steps = runner, inp, steps
        self._halo = tuple(h or DEFAULT_HALO for h in runner.out.halo)
        self.info.normalises = True
        self.info.notes = f"bioimage.io package, {runner.net.format} weights: a class map with {n_classes} classes"

    @property
    def margin(self) -> tuple[int, ...]:
        """The declared halo (or :data:`DEFAULT_HALO`), on multiples of what the network divides by."""
        div = self.net.unet_config.div_by
        return tuple(max(d, -(-h // d) * d) for h, d in zip(self._halo, div))

    def use_engine(self, engine: str | None) -> PackageSemantic:
        """The package runs with its own weights' runtime (see :mod:`.weights`)."""
        return self

    def segment(self, image: np.ndarray, settings: dict[str, Any], token: CancelToken, tile: int | None = None) -> Job:
        """Class map of one raw block (spatial..., C): the declared preprocessing over all of it, then per tile."""
        _check_channels(image, self.info.name, self.info.n_channels)
        return (yield from super().segment(_sample(image, self.inp, self.steps), settings, token, tile))
