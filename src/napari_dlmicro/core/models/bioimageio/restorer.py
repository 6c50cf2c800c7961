"""Packages that map an image to an image, as a predictor the denoising job runs (like Noise2Void and CARE).

One sample (C, spatial...) at a time: the declared preprocessing over the
whole sample, then tiles read with the declared halo around them (each
cancellable, each a progress tick), the tiles' cores stitched, then the
declared postprocessing over the whole output. Test-time augmentation, when
asked, averages the flipped and turned YX plane as our own models do.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_dlmicro.core.data.tiling import plan_tiles
from napari_dlmicro.core.models.bioimageio import processing
from napari_dlmicro.core.models.bioimageio.adapter import PackageRunner
from napari_dlmicro.core.models.bioimageio.layout import Layout
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, ProgressClock

DEFAULT_TILE = 512
DEFAULT_HALO = 32  # context read around each tile when a package declares no halo


@dataclass
class PackageRestorer:
    """An image-to-image package, predicting in the input's units as :class:`RestorationModel` does."""

    runner: PackageRunner
    inp: Layout
    pre: list[Any]
    post: list[Any]
    name: str
    source: str = ""
    kind: str = "care"  # our kind it stands for (n2v for our own Noise2Void packages)
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_out = self.runner.out.n_channels or 1
        self.config = {"channels": "independent" if (self.inp.n_channels or 1) == 1 else "joint",
                       "n_out": n_out, "name": self.name, **self.config}

    @property
    def ndim(self) -> int:
        return self.inp.ndim

    @property
    def n_channels(self) -> int:
        return int(self.inp.n_channels or 1)

    @property
    def margin(self) -> tuple[int, ...]:
        """The declared halo (or :data:`DEFAULT_HALO`), on multiples of the input's size step."""
        return tuple(max(max(1, s), -(-(h or DEFAULT_HALO) // max(1, s)) * max(1, s))
                     for h, s in zip(self.runner.out.halo, self.inp.step))

    @property
    def div_by(self) -> tuple[int, ...]:
        return tuple(max(1, s) for s in self.inp.step)

    def use_engine(self, engine: str | None) -> PackageRestorer:
        """The package runs with its own weights' runtime (see :mod:`.weights`)."""
        return self

    def tiles_of(self, spatial_shape: tuple[int, ...], tile: int | None) -> int:
        """How many tiles one sample of ``spatial_shape`` is cut into."""
        return len(self._plan(spatial_shape, tile))

    def _plan(self, shape: tuple[int, ...], tile: int | None):
        if tile is None:
            return plan_tiles(shape, None, self.margin, self.div_by)
        return plan_tiles(shape, tuple(tile + 2 * m for m in self.margin), self.margin, self.div_by)

    def _run(self, x: np.ndarray, tta: bool) -> np.ndarray:
        if not tta:
            return self.runner(x)[0]
        square = x.shape[-1] == x.shape[-2]
        acc, n = None, 0
        for k in range(4 if square else 1):
            for flip in (False, True):
                v = np.rot90(x, k, axes=(-2, -1))
                v = v[..., ::-1] if flip else v
                y = self.runner(np.ascontiguousarray(v))[0]
                y = y[..., ::-1] if flip else y
                y = np.rot90(y, -k, axes=(-2, -1)).astype(np.float64)
                acc, n = (y if acc is None else acc + y), n + 1
        return (acc / n).astype(np.float32)

    def predict_sample(self, sample: np.ndarray, tile: int | None = DEFAULT_TILE, tta: bool = False,
                       token: CancelToken = NEVER, clock: ProgressClock | None = None, done: int = 0) -> Job:
        """Restore one (C, spatial...) sample; yields a Progress per tile; returns (C_out, spatial...)."""
        bad = ~np.isfinite(sample)
        raw = sample if not bad.any() else np.where(bad, np.nanmedian(sample), sample)
        raw = np.asarray(raw, np.float32)[None]
        names = self.inp.names
        x = processing.apply(self.pre, raw, names)
        tiles = self._plan(x.shape[2:], tile)
        clock = clock or ProgressClock(len(tiles), "restoring")
        out = None
        for i, t in enumerate(tiles):
            token.check()
            y = self._run(np.ascontiguousarray(x[(slice(None), slice(None)) + t.src]), tta)
            if out is None:
                out = np.empty((1, y.shape[1]) + x.shape[2:], np.float32)
            out[(slice(None), slice(None)) + t.core] = y[(slice(None), slice(None)) + t.core_in_src]
            yield clock.tick(min(done + i + 1, clock.total), f"tile {i + 1}/{len(tiles)}")
        out = processing.apply(self.post, out, self.runner.out.names, reference=raw, reference_names=names)
        out = np.asarray(out[0], np.float32)
        if bad.any() and out.shape == sample.shape:
            out[bad] = np.nan
        return out
