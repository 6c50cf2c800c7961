"""What every segmentation model offers the segmentation job."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_dlmicro.core.labels.seeds import deepest_points
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Job
from napari_dlmicro.core.settings import Setting


@dataclass
class ModelInfo:
    """What the docks and the CLI show about a model before it runs."""

    name: str
    kind: str  # "stardist" | "cellpose" | ...
    spatial_ndim: int  # 2 or 3: the dimensionality it segments natively
    n_channels: int  # input channels it expects (1 grey, 3 RGB)
    source: str = ""  # folder, file or catalogue entry it came from
    settings: tuple[Setting, ...] = field(default_factory=tuple)
    notes: str = ""
    also_2d: bool = False  # a 3D model that segments 2D images too (Cellpose-SAM)
    class_map: bool = False  # output ids are classes (semantic), not object instances


@dataclass
class ObjectLabels:
    """A label image with, per object id, its seed point (pixel coordinates) and a score."""

    labels: np.ndarray
    ids: np.ndarray  # (N,) object ids present in ``labels``
    seeds: np.ndarray  # (N, ndim) int
    scores: np.ndarray  # (N,) higher wins where two objects claim one pixel


class Segmenter(ABC):
    """A loaded instance-segmentation model.

    ``image`` passed to :meth:`segment` is float32, spatial axes first
    (YX or ZYX) and a trailing channel axis (C=``info.n_channels``), already
    checked and already percentile-normalised by the segmentation job over the
    whole plane or volume (so tiles and preview crops see the same scale).
    ``segment`` is a job generator: it yields events (a
    ``Preview`` of labels per finished tile, ``Progress``) and returns the
    label image (int32/uint32, spatial shape of ``image``). Models with
    ``info.class_map`` return a class map instead (0 = background, 1..K-1),
    whose ids the job keeps as they are across tiles, planes and frames.
    """

    info: ModelInfo

    @abstractmethod
    def segment(
        self,
        image: np.ndarray,
        settings: dict[str, Any],
        token: CancelToken,
        tile: int | None = None,
    ) -> Job:
        """Segment one image (one plane, one volume); a job generator."""

    def segment_objects(
        self,
        image: np.ndarray,
        settings: dict[str, Any],
        token: CancelToken,
        tile: int | None = None,
    ) -> Job:
        """:meth:`segment`, also saying where each object is seeded and how sure the model is.

        Returns :class:`ObjectLabels`. Blockwise jobs give each object to the
        block that holds its seed. By default the seed is the pixel deepest
        inside the object and the score its size (the larger of two
        overlapping objects wins); models with their own seeds (StarDist's
        star centres and probabilities) override this.
        """
        labels = yield from self.segment(image, settings, token, tile)
        labels = np.asarray(labels)
        ids, seeds, sizes = deepest_points(labels)
        return ObjectLabels(labels, ids, seeds, sizes)

    def default_settings(self) -> dict[str, float]:
        """The model's own defaults for each of its settings."""
        return {s.name: s.default for s in self.info.settings}
