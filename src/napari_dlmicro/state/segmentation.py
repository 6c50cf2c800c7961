"""The Segmentation dock's state: which image and model, the settings, and the job they make."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.axes import default_axes
from napari_dlmicro.core.io.lazy import LazyImage
from napari_dlmicro.core.jobs.blockwise_segment import BlockwiseSegmentJob
from napari_dlmicro.core.jobs.segment import SEGMENT_SETTINGS, SegmentJob
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, check_engine, engine_choices
from napari_dlmicro.core.models.loader import kind_of, model_defaults
from napari_dlmicro.core.models.registry import Task, get_kind
from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.core.runtime.devices import DEVICE_CHOICES
from napari_dlmicro.state.blockwise import BlockwiseSettings
from napari_dlmicro.state.job_status import JobStatus
from napari_dlmicro.state.values import SettingValues

SECTION = "segmentation"
JOB_SETTINGS = {s.name: s for s in SEGMENT_SETTINGS}


def model_kind(ref: str) -> str:
    """The kind of a model reference, or ``stardist`` when it cannot be told (a folder being written)."""
    try:
        return kind_of(ref)
    except UserError:
        return "stardist"


def layer_axes(axes: str | None, ndim: int, rgb: bool) -> str:
    """Axes for an image layer: the remembered ones if they fit its dimensions, else a guess (RGB adds C)."""
    spatial = (axes or "").replace("C", "").replace("S", "")
    n = ndim - (1 if rgb else 0)
    if len(spatial) != n:
        spatial = default_axes(n).replace("C", "")
    return spatial + ("C" if rgb else "")


@evented
@dataclass
class SegmentationState:
    """Everything the Segmentation dock's form holds, remembered between sessions."""

    image: str = ""
    axes: str = ""
    model: str = ""
    tile: int = JOB_SETTINGS["tile"].default
    norm_low: float = JOB_SETTINGS["norm_low"].default
    norm_high: float = JOB_SETTINGS["norm_high"].default
    channel: int = -1  # -1: every channel
    device: str = "auto"
    engine: str = ENGINE_SETTING.default  # where the network runs on the CPU
    live: bool = False
    count: str = ""
    status: JobStatus = field(default_factory=JobStatus)
    model_settings: SettingValues = field(default_factory=SettingValues)
    blockwise: BlockwiseSettings = field(default_factory=BlockwiseSettings)

    def kind(self) -> str:
        """The kind of the chosen model."""
        return model_kind(self.model) if self.model else "stardist"

    def choose_model(self, ref: str, remembered: dict[str, Any] | None = None) -> None:
        """Pick a model: its kind's settings replace the form's, with remembered values where there are any."""
        self.model = ref
        kind = get_kind(self.kind())
        if kind.task is not Task.SEGMENT:
            raise UserError(f"'{ref}' is a {kind.title} model, which cannot segment",
                            "pick a StarDist, Cellpose or semantic model")
        own = model_defaults(ref)
        specs = [replace(s, default=None, optional=True,  # None: the model's own value
                         help=f"{s.help} The model's own: {own.get(s.name, s.default):g}.")
                 for s in kind.predict_settings]
        self.model_settings.set_specs(specs, remembered)

    def prediction(self, trust_code: bool = False) -> dict[str, Any]:
        """The model, device, tiling and normalisation settings of a job, checked (SegmentJob's field names).

        ``trust_code``: the user confirmed that the model's own code may run (:mod:`.code_trust`).
        """
        if not self.model:
            raise UserError("no model is chosen", "pick a model from the list or Browse… to a model folder")
        if self.device not in DEVICE_CHOICES and not self.device.startswith("cuda:"):
            raise UserError(f"unknown device '{self.device}'", f"use one of {', '.join(DEVICE_CHOICES)}")
        tile = JOB_SETTINGS["tile"].check(self.tile)
        low, high = JOB_SETTINGS["norm_low"].check(self.norm_low), JOB_SETTINGS["norm_high"].check(self.norm_high)
        channel = None if self.channel < 0 else JOB_SETTINGS["channel"].check(self.channel)
        settings = {k: v for k, v in self.model_settings.checked().items() if v is not None}
        engine = check_engine(ENGINE_SETTING.check(self.engine))
        return {"channel": channel, "settings": settings, "tile": tile or None, "device": self.device,
                "norm_low": low, "norm_high": high, "trust_code": bool(trust_code), "engine": engine}

    def build_job(self, data: Any, layer_scale: tuple[float, ...] = (), region: dict | None = None,
                  trust_code: bool = False) -> SegmentJob:
        """The segmentation job for ``data`` (a layer's array) from the current settings, checked."""
        prediction = self.prediction(trust_code)
        axes = self.axes.strip().upper() or None
        spatial = [a for a in (axes or "") if a in "ZYX"]
        scale = dict(zip(spatial, tuple(layer_scale)[-len(spatial):])) if spatial and len(layer_scale) else None
        return SegmentJob(image=data, model=self.model, axes=axes, region=region, scale=scale, **prediction)

    def build_blockwise_job(self, image: LazyImage, resume: bool = False,
                            trust_code: bool = False) -> BlockwiseSegmentJob:
        """The blockwise job for a big image from the current settings and the Big images section, checked."""
        return self.blockwise.build_job(image, self.model, self.prediction(trust_code), resume)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The labels' shape for an image of ``shape``: every axis but the channels."""
        axes = self.axes.strip().upper() or default_axes(len(shape), shape)
        return tuple(n for a, n in zip(axes, shape) if a not in "CS")

    def remember(self) -> None:
        """Save the form for the next session."""
        save_settings(SECTION, {"model": self.model, "norm_low": self.norm_low, "norm_high": self.norm_high,
                                "tile": self.tile, "device": self.device, "engine": self.engine,
                                "live": self.live, f"settings:{self.kind()}": self.model_settings.raw(),
                                "blockwise": self.blockwise.remembered()})

    def restore(self) -> dict[str, Any]:
        """Put back the last session's form; returns what was saved (the dock re-selects the model from it)."""
        saved = load_settings(SECTION)
        try:
            self.norm_low = float(saved.get("norm_low", self.norm_low))
            self.norm_high = float(saved.get("norm_high", self.norm_high))
            self.tile = int(saved.get("tile", self.tile))
            self.device = str(saved.get("device", self.device))
            engine = str(saved.get("engine", self.engine))
            self.engine = engine if engine in engine_choices() else self.engine
            self.live = bool(saved.get("live", False))
            self.blockwise.restore(saved.get("blockwise") or {})
        except (TypeError, ValueError):
            pass  # a hand-edited settings file: keep the defaults
        return saved

    def summary(self, n_objects: int, class_map: bool, in_view: bool, model_name: str) -> str:
        """The count line: ``57 objects in the image (name)``."""
        what = ("class" if n_objects == 1 else "classes") if class_map else "objects"
        return f"{n_objects} {what} {'in view' if in_view else 'in the image'} ({model_name})"


def labels_dtype(largest: int) -> np.dtype:
    """uint16 while ids fit, uint32 beyond."""
    return np.dtype(np.uint16 if largest <= np.iinfo(np.uint16).max else np.uint32)
