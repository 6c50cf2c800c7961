"""StarDist instance segmentation: our torch network, stardist's geometry and NMS.

Prediction follows StarDist's own sparse scheme, so that the same weights give
the same labels: the image is padded at its end (reflect) to a multiple of
what the network divides by, object candidates are the grid pixels whose
probability exceeds the threshold, distances are kept above 1e-3, and
stardist's NMS and rendering turn the survivors into labels. StarDist skips
two grid pixels at the image border as seeds; imported models keep that, while
models trained here seed objects up to the border (``seed_border`` 0), where
a thin, cut-off nucleus has all its grid pixels. Tiling only changes *where*
candidates are computed, never which ones.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from napari_dlmicro.core.data.tiling import Tile, pad_to_multiple, plan_tiles
from napari_dlmicro.core.models.base import ModelInfo, ObjectLabels, Segmenter
from napari_dlmicro.core.models.engines.runner import torch_runner, with_engine
from napari_dlmicro.core.models.stardist.geometry import nms_objects, nms_render
from napari_dlmicro.core.models.stardist.network import StarDistNet
from napari_dlmicro.core.models.stardist.settings import stardist_settings
from napari_dlmicro.core.models.stardist.views import averaged_forward
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, cancellable_forward
from napari_dlmicro.core.runtime.devices import autocast
from napari_dlmicro.core.runtime.events import (
    Job,
    Level,
    Notice,
    Preview,
    ProgressClock,
)
from napari_dlmicro.core.runtime.oom import forward_or_shrink

BORDER = 2  # grid pixels at the image border that never seed an object, in StarDist's own models
MIN_TILE = 64


@dataclass
class Candidates:
    """Object candidates: centres (pixels), probabilities and ray lengths."""

    points: np.ndarray  # (N, ndim) int
    prob: np.ndarray  # (N,)
    dist: np.ndarray  # (N, n_rays)
    threshold: float

    def above(self, prob_thresh: float) -> Candidates:
        keep = self.prob > prob_thresh
        return Candidates(self.points[keep], self.prob[keep], self.dist[keep], prob_thresh)

    @classmethod
    def concat(cls, parts: list[Candidates], ndim: int, n_rays: int, threshold: float) -> Candidates:
        if not parts:
            return cls(np.zeros((0, ndim), int), np.zeros(0, np.float32), np.zeros((0, n_rays), np.float32), threshold)
        return cls(
            np.concatenate([p.points for p in parts]),
            np.concatenate([p.prob for p in parts]),
            np.concatenate([p.dist for p in parts]),
            threshold,
        )


class StarDistSegmenter(Segmenter):
    """A loaded StarDist model (2D or 3D) ready to segment on one device."""

    def __init__(
        self,
        net: StarDistNet,
        *,
        name: str,
        source: str = "",
        prob_thresh: float = 0.5,
        nms_thresh: float = 0.4,
        rays: Any = None,
        device: torch.device | None = None,
        extra: dict | None = None,
        seed_border: int = BORDER,
        views: int = 1,
    ) -> None:
        self.net = net.eval()
        self.seed_border = int(seed_border)
        self.rays = rays
        self.extra = extra or {}
        self.device = torch.device("cpu")
        if device is not None:
            self.to(device)
        c = net.config
        self.runner = torch_runner(self.net, self._torch_forward, ("prob", "dist"))
        self.info = ModelInfo(
            name=name,
            kind="stardist",
            spatial_ndim=c.ndim,
            n_channels=c.n_channels,
            source=source,
            settings=stardist_settings(prob_thresh, nms_thresh, c.ndim, views),
        )
        self._cache: tuple[str, Candidates] | None = None

    @property
    def default_views(self) -> int:
        """The test-time views this model segments with unless told otherwise (1 for 3D models)."""
        return int(self.default_settings().get("views", 1))

    # -- device -----------------------------------------------------------
    def to(self, device: torch.device) -> StarDistSegmenter:
        """Move the network to ``device``."""
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    @property
    def margin(self) -> tuple[int, ...]:
        """Context read around each tile: the network's whole receptive field.

        With it, every kept output equals the untiled one exactly (as with
        StarDist's own tile overlap), so tiling never changes the labels.
        """
        c = self.net.config
        return tuple(max(d, -(-r // d) * d) for r, d in zip(c.receptive_radius, c.div_by))

    def _plan(self, shape: tuple[int, ...], tile: int | None) -> list[Tile]:
        """Tiles whose *cores* are about ``tile`` pixels wide, each read with :attr:`margin` around it."""
        if tile is None:
            return plan_tiles(shape, None, self.margin, self.net.config.div_by)
        return plan_tiles(shape, tuple(tile + 2 * m for m in self.margin), self.margin, self.net.config.div_by)

    # -- network ----------------------------------------------------------
    def forward(self, x: np.ndarray, views: int = 1, token: CancelToken = NEVER) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs on the grid for one (spatial..., C) array: prob, dist (…, R).

        ``views`` > 1 (2D models) averages them over flipped and turned copies (:mod:`.views`).
        ``token`` is checked between views and inside the network, layer by layer.
        """
        c = self.net.config
        once = lambda v: self._forward_once(v, token)  # one view, with the token
        if views > 1:
            return averaged_forward(once, x, views, tuple(c.grid), tuple(c.div_by), c.n_rays, token.check)
        return once(x)

    def use_engine(self, engine: str | None) -> StarDistSegmenter:
        """Run the network on ``engine`` from now on (auto, torch, onnxruntime, openvino; see :mod:`..engines`)."""
        self.runner = with_engine(self.runner, engine)
        return self

    def _forward_once(self, x: np.ndarray, token: CancelToken = NEVER) -> tuple[np.ndarray, np.ndarray]:
        prob, dist = self.runner(np.ascontiguousarray(np.moveaxis(x, -1, 0)[None]), token)
        return prob[0, 0], np.moveaxis(dist[0], 0, -1)

    @torch.inference_mode()
    def _torch_forward(self, x: np.ndarray, token: CancelToken = NEVER) -> tuple[np.ndarray, np.ndarray]:
        with autocast(self.device), cancellable_forward(self.net, token):
            prob, dist = self.net(torch.from_numpy(x).to(self.device))
        return prob.float().cpu().numpy(), dist.float().cpu().numpy()

    def _forward_safe(self, padded: np.ndarray, src: tuple[slice, ...], tile: int, views: int = 1,
                      token: CancelToken = NEVER) -> Job:
        """Outputs for ``padded[src]``; on GPU out-of-memory retries in smaller tiles, then on the CPU."""
        return (yield from forward_or_shrink(lambda: self.forward(padded[src], views, token),
                                             lambda smaller: self._stitched(padded, src, smaller, views, token),
                                             lambda: self.to(torch.device("cpu")), self.device, tile, MIN_TILE))

    def _stitched(self, padded: np.ndarray, src: tuple[slice, ...], tile: int, views: int = 1,
                  token: CancelToken = NEVER) -> Job:
        region = padded[src]
        grid = self.net.config.grid
        out_shape = tuple(n // g for n, g in zip(region.shape[:-1], grid))
        prob = np.zeros(out_shape, np.float32)
        dist = np.zeros(out_shape + (self.net.config.n_rays,), np.float32)
        for sub in self._plan(region.shape[:-1], tile):
            token.check()
            p, d = yield from self._forward_safe(region, sub.src, tile, views, token)
            dst = _on_grid(sub.core, grid)
            own = _on_grid(sub.core_in_src, grid)
            prob[dst], dist[dst] = p[own], d[own]
        return prob, dist

    # -- candidates -------------------------------------------------------
    def candidates(self, image: np.ndarray, token: CancelToken, tile: int | None, prob_thresh: float,
                   views: int = 1) -> Job:
        """Object candidates over ``image`` (normalised, spatial..., C), tile by tile.

        Yields a Progress and a labels Preview per tile; returns :class:`Candidates`.
        Repeated calls on the same image reuse the network's work, so tuning
        thresholds only re-runs NMS.
        """
        c = self.net.config
        if views > 1 and c.ndim != 2:
            yield Notice("test-time views apply to 2D models only: this 3D model runs once", Level.WARNING)
            views = 1
        key = _fingerprint(image, (tile, views, self.seed_border), self)
        if self._cache is not None and self._cache[0] == key and self._cache[1].threshold <= prob_thresh:
            return self._cache[1].above(prob_thresh)
        shape = image.shape[:-1]
        padded = pad_to_multiple(image, c.div_by)
        out_shape = tuple(n // g for n, g in zip(padded.shape[:-1], c.grid))
        tiles = self._plan(padded.shape[:-1], tile)
        clock = ProgressClock(len(tiles), "network")
        parts: list[Candidates] = []
        next_label = 1
        for i, t in enumerate(tiles):
            token.check()
            prob, dist = yield from self._forward_safe(padded, t.src, tile or max(padded.shape[:-1]), views, token)
            part = _tile_candidates(prob, dist, t, c.grid, out_shape, prob_thresh, shape, self.seed_border)
            parts.append(part)
            if len(tiles) > 1:  # a single tile's preview would be the final result, computed twice
                preview, next_label = self._tile_preview(part, t, shape, next_label, token)
                if preview is not None:
                    yield preview
            yield clock.tick(i + 1, f"tile {i + 1}/{len(tiles)}")
        cands = Candidates.concat(parts, c.ndim, c.n_rays, prob_thresh)
        self._cache = (key, cands)
        return cands

    def _tile_preview(self, part: Candidates, t: Tile, shape, next_label: int, token: CancelToken = NEVER):
        core = tuple(slice(s.start, min(s.stop, n)) for s, n in zip(t.core, shape))
        if any(s.stop <= s.start for s in core):
            return None, next_label
        origin = np.array([s.start for s in core])
        local = Candidates(part.points - origin, part.prob, part.dist, part.threshold)
        labels = self.render(local, tuple(s.stop - s.start for s in core), self.default_settings()["nms_thresh"],
                             token)
        labels = labels.astype(np.int64)
        n = int(labels.max())
        labels[labels > 0] += next_label - 1
        return Preview(labels, core, "labels"), next_label + n

    # -- NMS and rendering ------------------------------------------------
    def render(self, cands: Candidates, shape: tuple[int, ...], nms_thresh: float,
               token: CancelToken = NEVER) -> np.ndarray:
        """Non-maximum suppression over the candidates, then the label image (stopped by a cancelled ``token``)."""
        rays_json = self.rays.to_json() if self.rays is not None else None
        return offload.call(nms_render, cands.points, cands.prob, cands.dist, tuple(shape), float(nms_thresh),
                            rays_json, token=token)

    def segment(self, image: np.ndarray, settings: dict[str, Any], token: CancelToken, tile: int | None = None) -> Job:
        """Labels for one normalised image (spatial..., C)."""
        s = {**self.default_settings(), **(settings or {})}
        views = int(round(float(s.get("views", 1))))
        cands = yield from self.candidates(image, token, tile, float(s["prob_thresh"]), views)
        token.check()
        return self.render(cands, image.shape[:-1], float(s["nms_thresh"]), token)

    def segment_objects(self, image: np.ndarray, settings: dict[str, Any], token: CancelToken,
                        tile: int | None = None) -> Job:
        """Labels with StarDist's own seeds: each object's star centre and its probability."""
        s = {**self.default_settings(), **(settings or {})}
        views = int(round(float(s.get("views", 1))))
        cands = yield from self.candidates(image, token, tile, float(s["prob_thresh"]), views)
        token.check()
        rays_json = self.rays.to_json() if self.rays is not None else None
        labels, points, prob = offload.call(nms_objects, cands.points, cands.prob, cands.dist,
                                            tuple(image.shape[:-1]), float(s["nms_thresh"]), rays_json, token=token)
        present = np.zeros(len(points) + 1, bool)
        present[np.unique(labels)] = True
        ids = np.nonzero(present[1:])[0] + 1
        return ObjectLabels(labels, ids, np.asarray(points, np.int64)[ids - 1], np.asarray(prob, np.float32)[ids - 1])


def _on_grid(region: tuple[slice, ...], grid) -> tuple[slice, ...]:
    return tuple(slice(s.start // g, -(-s.stop // g)) for s, g in zip(region, grid))


def _tile_candidates(prob, dist, t: Tile, grid, out_shape, prob_thresh: float, shape,
                     border: int = BORDER) -> Candidates:
    own = _on_grid(t.core_in_src, grid)
    dst = _on_grid(t.core, grid)
    p, d = prob[own], dist[own]
    keep = p > prob_thresh
    inner = tuple(
        slice(border if s.start == 0 else 0, (s.stop - s.start) - (border if s.stop == n else 0))
        for s, n in zip(dst, out_shape)
    )
    mask = np.zeros_like(keep)
    mask[inner] = True
    keep &= mask
    idx = np.stack(np.nonzero(keep), axis=1)
    points = (idx + np.array([s.start for s in dst])) * np.asarray(grid)
    inside = np.all(points < np.asarray(shape), axis=1)
    # distances clipped for the kept candidates only (a full-size copy of every ray costs more than the rest)
    return Candidates(points[inside], p[keep][inside], np.maximum(d[keep][inside], np.float32(1e-3)), prob_thresh)


def _fingerprint(image: np.ndarray, tile, model: StarDistSegmenter) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(image).data)
    h.update(repr((image.shape, tile, id(model.net), str(model.device), model.runner.choice)).encode())
    return h.hexdigest()
