"""Semantic U-Net models as segmenters: every pixel gets a class, tile by tile.

The result is a *class map* (0 = background, 1..K-1 the classes), not object
instances: the same class id means the same class in every tile, plane and
time point, so the segmentation job does not renumber it (``ModelInfo.class_map``).
Images arrive percentile-normalised by the segmentation job, as the semantic
trainer normalised its training images (1st/99.8th percentile per channel, over
the whole image). Tiles are read with the network's receptive field around
them, so a tiled class map equals the untiled one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_dlmicro.core.data.tiling import Tile, pad_to_multiple, plan_tiles
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.base import ModelInfo, Segmenter
from napari_dlmicro.core.models.semantic.network import SemanticModel, load_semantic
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, cancellable_forward
from napari_dlmicro.core.runtime.devices import autocast
from napari_dlmicro.core.runtime.events import Job, Preview, ProgressClock
from napari_dlmicro.core.runtime.oom import forward_or_shrink

MIN_TILE = 64  # the smallest tile tried after the GPU runs out of memory


class SemanticSegmenter(Segmenter):
    """A loaded semantic U-Net that segments one image into a class map."""

    def __init__(self, model: SemanticModel, *, source: str = "", device: torch.device | None = None) -> None:
        self.model = model
        self.net = model.net.eval()
        self.device = torch.device(device or "cpu")
        self.net.to(self.device)
        c = self.net.unet_config
        self.info = ModelInfo(
            name=model.name, kind="semantic", spatial_ndim=c.ndim, n_channels=c.in_channels, source=source,
            notes=f"semantic U-Net: a class map with {self.net.n_classes - 1} class(es) besides background",
            class_map=True,
        )

    @property
    def n_classes(self) -> int:
        """Classes the network tells apart, background included."""
        return int(self.net.n_classes)

    @property
    def margin(self) -> tuple[int, ...]:
        """Context read around each tile (the receptive field, on multiples of what the network divides by)."""
        div = self.net.unet_config.div_by
        return tuple(max(d, -(-r // d) * d) for r, d in zip(self.net.unet_config.receptive_radius, div))

    def _plan(self, shape: tuple[int, ...], tile: int | None) -> list[Tile]:
        div = self.net.unet_config.div_by
        if tile is None:
            return plan_tiles(shape, None, self.margin, div)
        return plan_tiles(shape, tuple(tile + 2 * m for m in self.margin), self.margin, div)

    @torch.inference_mode()
    def forward(self, x: np.ndarray, token: CancelToken = NEVER) -> np.ndarray:
        """Class of every pixel of one (spatial..., C) array whose sizes the network divides."""
        t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)[None])).to(self.device)
        with autocast(self.device), cancellable_forward(self.net, token):
            logits = self.net(t)
        return logits[0].argmax(0).to(torch.uint8).cpu().numpy()

    def _forward_safe(self, padded: np.ndarray, src: tuple[slice, ...], tile: int,
                      token: CancelToken = NEVER) -> Job:
        """Class map of ``padded[src]``; on GPU out-of-memory retries in smaller tiles, then on the CPU."""
        return (yield from forward_or_shrink(lambda: self.forward(padded[src], token),
                                             lambda smaller: self._stitched(padded, src, smaller, token),
                                             self._to_cpu, self.device, tile, MIN_TILE))

    def _stitched(self, padded: np.ndarray, src: tuple[slice, ...], tile: int, token: CancelToken = NEVER) -> Job:
        region = padded[src]
        out = np.zeros(region.shape[:-1], np.uint8)
        for sub in self._plan(region.shape[:-1], tile):
            token.check()
            out[sub.core] = (yield from self._forward_safe(region, sub.src, tile, token))[sub.core_in_src]
        return out

    def _to_cpu(self) -> None:
        self.device = torch.device("cpu")
        self.net.to(self.device)

    def _check(self, image: np.ndarray) -> None:
        info = self.info
        if image.ndim - 1 != info.spatial_ndim:
            raise UserError(f"{info.name} is a {info.spatial_ndim}D model but the image is {image.ndim - 1}D",
                            "use a model trained on images of this dimensionality, or set the axes (Z)")
        if image.shape[-1] != info.n_channels:
            raise UserError(f"{info.name} takes {info.n_channels} channel(s) but the input has {image.shape[-1]}",
                            "pick the channel(s) it was trained on (dock: Channel; CLI: --channel N)")

    def segment(self, image: np.ndarray, settings: dict[str, Any], token: CancelToken, tile: int | None = None) -> Job:
        """Class map (uint8, spatial shape of ``image``) of one normalised image (spatial..., C).

        Yields a Progress per tile, and a class-map Preview per tile when there is more than one.
        """
        self._check(image)
        shape = image.shape[:-1]
        padded = pad_to_multiple(np.asarray(image, np.float32), self.net.unet_config.div_by)
        tiles = self._plan(padded.shape[:-1], tile)
        clock = ProgressClock(len(tiles), "network")
        out = np.zeros(padded.shape[:-1], np.uint8)
        for i, t in enumerate(tiles):
            token.check()
            size = max(s.stop - s.start for s in t.src) if tile is None else tile
            out[t.core] = (yield from self._forward_safe(padded, t.src, size, token))[t.core_in_src]
            core = tuple(slice(s.start, min(s.stop, n)) for s, n in zip(t.core, shape))
            if len(tiles) > 1 and all(s.stop > s.start for s in core):
                yield Preview(out[core].copy(), core, "labels")
            yield clock.tick(i + 1, f"tile {i + 1}/{len(tiles)}")
        return out[tuple(slice(0, n) for n in shape)]


def load_semantic_segmenter(folder: str | Path, device: torch.device | None = None) -> SemanticSegmenter:
    """Load a semantic model folder (``config.json`` kind ``semantic``) as a segmenter."""
    return SemanticSegmenter(load_semantic(Path(folder), device), source=str(folder), device=device)
