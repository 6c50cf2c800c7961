"""The Denoising dock's state: Noise2Void or CARE, its training settings, and the jobs they make."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.evaluation.restoration import quality_text
from napari_dlmicro.core.io.axes import default_axes, normalize_axes
from napari_dlmicro.core.jobs.denoise import (
    VIEWS_SETTING,
    Applied,
    growth,
    output_scale,
    output_translate,
    views_to_tta,
)
from napari_dlmicro.core.models.engines.choice import ENGINE_SETTING, check_engine, engine_choices
from napari_dlmicro.core.models.registry import Task, get_kind, kinds
from napari_dlmicro.core.models.restoration.network import RestorationModel
from napari_dlmicro.core.models.restoration.settings import TrainSettings
from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.state.job_status import JobStatus
from napari_dlmicro.state.training import gui_threads
from napari_dlmicro.state.values import SettingValues

SECTION = "denoise"
RESTORING_KINDS = tuple(k.name for k in kinds(Task.RESTORE))


@evented
@dataclass
class DenoiseState:
    """Everything the Denoising dock's training form holds, remembered between sessions."""

    kind: str = "n2v"
    axes: str = ""
    name: str = "n2v_model"
    inputs_folder: str = ""  # CARE pairs from two folders instead of layers ("" : layers)
    targets_folder: str = ""
    engine: str = ENGINE_SETTING.default  # where "Apply" runs the network on the CPU
    views: str = str(VIEWS_SETTING.default)  # test-time views "Apply" averages (1 or 8)
    status: JobStatus = field(default_factory=JobStatus)
    values: SettingValues = field(default_factory=SettingValues)

    def __post_init__(self) -> None:
        self.values.set_specs(get_kind(self.kind).train_settings)

    def choose_kind(self, kind: str) -> None:
        """Train another kind; the settings both kinds have keep their values."""
        if kind not in RESTORING_KINDS:
            raise UserError(f"'{kind}' is not a restoration model", f"use one of {', '.join(RESTORING_KINDS)}")
        kept = self.values.raw()
        self.kind = kind
        self.name = f"{kind}_model"
        self.values.set_specs(get_kind(kind).train_settings, kept)

    @property
    def pair_folders(self) -> tuple[str, str] | None:
        """CARE's (inputs, targets) folders, or None to train on layers."""
        if self.inputs_folder and self.targets_folder:
            return self.inputs_folder, self.targets_folder
        return None

    def set_pair_folders(self, inputs: str | None, targets: str | None) -> None:
        """Train CARE on the files of two folders (matched by name) instead of on layers; None clears."""
        self.inputs_folder, self.targets_folder = (str(inputs), str(targets)) if inputs and targets else ("", "")

    def train_settings(self, axes: str | None = None, max_threads: int | None = None) -> TrainSettings:
        """The checked :class:`TrainSettings` of the form."""
        return get_kind(self.kind).training_settings(self.values.checked(), axes=axes or None,
                                                     max_threads=max_threads)

    def job_args(self) -> dict[str, Any]:
        """Keyword arguments for :func:`...core.jobs.train.train_job` (besides the data), checked."""
        self.values.checked()
        return {"settings": self.values.checked(), "name": self.name.strip() or f"{self.kind}_model",
                "threads": gui_threads()}

    def apply_engine(self) -> str:
        """The engine "Apply" runs on, checked."""
        return check_engine(ENGINE_SETTING.check(self.engine))

    def apply_tta(self) -> bool:
        """Whether "Apply" averages the eight test-time views, checked."""
        return views_to_tta(VIEWS_SETTING.check(self.views))

    def remember(self) -> None:
        """Save the form for the next session."""
        save_settings(SECTION, {"kind": self.kind, "values": self.values.raw(), "engine": self.engine,
                                "views": self.views})

    def restore(self) -> None:
        """Put back the last session's form."""
        saved = load_settings(SECTION)
        kind = saved.get("kind", self.kind)
        if kind in RESTORING_KINDS:
            self.kind = kind
            self.name = f"{kind}_model"
        if saved.get("engine") in engine_choices():
            self.engine = str(saved["engine"])
        if str(saved.get("views")) in VIEWS_SETTING.choices:
            self.views = str(saved["views"])
        values = saved.get("values")
        self.values.set_specs(get_kind(self.kind).train_settings, values if isinstance(values, dict) else None)


@dataclass(frozen=True)
class Placement:
    """Where an output layer goes: its shape, and the ``scale`` and ``translate`` that put it over its input."""

    shape: tuple[int, ...]
    scale: tuple[float, ...]
    translate: tuple[float, ...]


def output_placement(model: RestorationModel, shape: Sequence[int], scale: Sequence[float],
                     translate: Sequence[float], axes: str | None = None) -> Placement:
    """The placement of ``model``'s output for an input layer of ``shape``, ``scale`` and ``translate``.

    An upsampling model's output is the factor larger along the axes it grows,
    with the pixel size divided, and its pixels sit over the input pixels they
    came from (see :func:`...core.jobs.denoise.output_translate`).
    """
    axes = normalize_axes(axes or default_axes(len(shape), tuple(shape)), len(shape))
    grow = growth(model, axes)
    return Placement(tuple(int(n) * grow.get(a, 1) for n, a in zip(shape, axes)),
                     output_scale(model, scale, axes), output_translate(model, scale, translate, axes))


PREVIEW_SIZE = {"Z": 32, "Y": 192, "X": 192}  # the field in view that training previews


def field_around(shape: Sequence[int], axes: str, centre: Sequence[float],
                 sizes: dict[str, int] = PREVIEW_SIZE) -> tuple[list[int], tuple[slice, ...]]:
    """The spatial axes of ``shape``, and a region of at most ``sizes`` pixels each, centred on ``centre``
    (data coordinates; the middle where it has no value) and kept inside the image."""
    spatial = [i for i, a in enumerate(axes) if a in "ZYX"]
    region = []
    for i in spatial:
        n = shape[i]
        size = min(n, sizes[axes[i]])
        c = int(np.clip(round(float(centre[i])), 0, n - 1)) if i < len(centre) else n // 2
        start = int(np.clip(c - size // 2, 0, n - size))
        region.append(slice(start, start + size))
    return spatial, tuple(region)


def preview_placement(scale: Sequence[float], translate: Sequence[float], asked: Sequence[slice],
                      shown: Sequence[slice]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``scale`` and ``translate`` of a training preview over its layer (spatial axes only).

    ``asked`` is the region of the input the preview was asked for, ``shown``
    the region the preview covers in its own pixels: the same for a model that
    keeps the size, the factor larger for an upsampling one.
    """
    out_scale, out_translate = [], []
    for s, t, a, b in zip(scale, translate, asked, shown):
        f = max(1, round((b.stop - b.start) / max(1, a.stop - a.start)))
        out_scale.append(float(s) / f)
        out_translate.append(float(t) - (f - 1) / (2 * f) * float(s) + (b.start or 0) * float(s) / f)
    return tuple(out_scale), tuple(out_translate)


def result_text(applied: Applied) -> str:
    """What the dock says about an applied model: the scores against the ground truth, or why there are none."""
    return applied.score_error or (quality_text(applied.scores) if applied.scores else "")


def placeholder(placement: Placement) -> np.ndarray:
    """An empty float32 image of the output's shape, shown until the result arrives."""
    return np.zeros(placement.shape, np.float32)
