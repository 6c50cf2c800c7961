"""The kinds of model: what each one does, how it loads and trains, and the settings it offers.

This is the one place a kind is declared. The command line builds
``napari-dlmicro train KIND`` and its flags from it, the docks their model
lists and forms, the loader its dispatch and the store its listing; a new kind
is a package under ``core/models/`` plus one entry here.

Loaders and trainers are named as ``"module:function"`` and imported when
first used, so that listing the kinds (the CLI's ``--help``, a dock's form)
never imports torch networks, cellpose or stardist's geometry.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.cellpose import settings as cellpose_settings
from napari_dlmicro.core.models.classifier import settings as classifier_settings
from napari_dlmicro.core.models.restoration import settings as restoration_settings
from napari_dlmicro.core.models.semantic import settings as semantic_settings
from napari_dlmicro.core.models.stardist import settings as stardist_settings
from napari_dlmicro.core.settings import Setting, check_values

BUDGET = ("minutes", "epochs")  # giving one of these switches the other off


class Task(str, Enum):
    """What a kind of model does."""

    SEGMENT = "segment"  # an image in, labels (objects or classes) out
    RESTORE = "restore"  # an image in, an image out
    CLASSIFY = "classify"  # an image and its objects in, a class per object out


class TrainsOn(str, Enum):
    """What a kind learns from."""

    MASKS = "masks"  # label images of objects
    CLASS_MAPS = "class maps"  # one class id per pixel
    TARGETS = "targets"  # a clean or high-quality image per input
    IMAGES = "images"  # the noisy images themselves
    CLASSES = "object classes"  # label images and the class of some of their objects


@dataclass(frozen=True)
class Kind:
    """One kind of model, declared once."""

    name: str
    title: str
    task: Task
    description: str
    trains_on: TrainsOn
    training: type  # the settings dataclass of a training run
    train_settings: tuple[Setting, ...]
    predict_settings: tuple[Setting, ...]  # before a model is loaded; a loaded model offers its own defaults
    load: str  # "module:function", called as function(reference, device)
    train: str  # "module:function", called as function(data, settings, token, device=, name=, save_to=, init=)
    class_map: bool = False  # its labels are classes, not objects
    fixed: Mapping[str, Any] | None = None  # training fields the kind sets itself (N2V and CARE share settings)

    def loader(self) -> Callable[..., Any]:
        """The function that loads a model of this kind."""
        return _resolve(self.load)

    def trainer(self) -> Callable[..., Any]:
        """The job generator function that trains a model of this kind."""
        return _resolve(self.train)

    def train_defaults(self) -> dict[str, Any]:
        """The user-facing training settings at their defaults."""
        return {s.name: s.default for s in self.train_settings}

    def training_settings(self, values: Mapping[str, Any], **extra: Any) -> Any:
        """The settings dataclass for ``values`` (checked against the declared ranges), defaults for the rest.

        ``extra`` are fields no user sets (thread limits, the device); an
        ``epochs`` value switches the ``minutes`` budget off, and the reverse.
        """
        checked = check_values(self.train_settings, {k: v for k, v in values.items()}, f"{self.name} setting")
        if checked.get("epochs") is not None and "minutes" not in values:
            checked["minutes"] = None
        if checked.get("minutes") is not None and "epochs" not in values:
            checked["epochs"] = None
        names = {f.name for f in fields(self.training)}
        extra = {k: v for k, v in extra.items() if k in names}
        return self.training(**{**checked, **extra, **(self.fixed or {})})


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_M = "napari_dlmicro.core.models"
KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("stardist", "StarDist", Task.SEGMENT, "star-convex objects (nuclei), 2D and 3D", TrainsOn.MASKS,
         stardist_settings.StarDistTraining, stardist_settings.TRAIN_SETTINGS, stardist_settings.stardist_settings(),
         f"{_M}.stardist.folder:load_stardist", f"{_M}.stardist.train:train_kind"),
    Kind("cellpose", "Cellpose-SAM", Task.SEGMENT, "cells and nuclei of any shape (fine-tuning; best on a GPU)",
         TrainsOn.MASKS, cellpose_settings.CellposeTraining, cellpose_settings.TRAIN_SETTINGS,
         cellpose_settings.SETTINGS, f"{_M}.cellpose.segmenter:load_cellpose", f"{_M}.cellpose.train:train_kind"),
    Kind("semantic", "Semantic U-Net", Task.SEGMENT, "a class for every pixel", TrainsOn.CLASS_MAPS,
         semantic_settings.SemanticTraining, semantic_settings.TRAIN_SETTINGS, (),
         f"{_M}.semantic.segmenter:load_semantic_segmenter", f"{_M}.semantic.train:train_kind", class_map=True),
    Kind("n2v", "Noise2Void", Task.RESTORE, "self-supervised denoising, trained on the noisy images themselves",
         TrainsOn.IMAGES, restoration_settings.TrainSettings, restoration_settings.N2V_TRAIN_SETTINGS, (),
         f"{_M}.restoration.network:load_restoration", f"{_M}.restoration.train:train_kind", fixed={"kind": "n2v"}),
    Kind("care", "CARE", Task.RESTORE, "supervised restoration from pairs of low and high quality images",
         TrainsOn.TARGETS, restoration_settings.TrainSettings, restoration_settings.CARE_TRAIN_SETTINGS, (),
         f"{_M}.restoration.network:load_restoration", f"{_M}.restoration.train:train_kind", fixed={"kind": "care"}),
    Kind("classifier", "Classifier", Task.CLASSIFY, "a class for every segmented object, learnt from a few "
         "labelled ones", TrainsOn.CLASSES,
         classifier_settings.ClassifierTraining, classifier_settings.TRAIN_SETTINGS, (),
         f"{_M}.classifier.folder:load_classifier", f"{_M}.classifier.train:train_kind"),
)}


# bioimage.io packages are a source of models, not a kind: each runs as one of the kinds above. Named like the
# kinds' loaders, so that listing kinds never imports bioimageio.spec (seconds to import).
PACKAGE_KIND = f"{_M}.bioimageio.load:kind_of_package"  # called as function(reference) -> a kind's name
PACKAGE_LOAD = f"{_M}.bioimageio.load:load_package"  # called as function(reference, device, trust_code=)
PACKAGE_TRUST = f"{_M}.bioimageio.load:code_needing_trust"  # called as function(reference) -> UntrustedCode | None


def package_kind(ref: Any) -> str:
    """The kind a bioimage.io package runs as (it is opened, and downloaded once if it is a zoo id)."""
    return _resolve(PACKAGE_KIND)(ref)


def load_package(ref: Any, device: Any, trust_code: bool = False) -> Any:
    """A bioimage.io package as a segmenter or a restorer (see :mod:`.bioimageio.load`)."""
    return _resolve(PACKAGE_LOAD)(ref, device, trust_code=trust_code)


def package_code_to_trust(ref: Any) -> Any:
    """The :class:`...errors.UntrustedCode` a package would need the user's trust for, or None."""
    return _resolve(PACKAGE_TRUST)(ref)


def get_kind(name: str) -> Kind:
    """The kind called ``name``, or a clear error listing the kinds there are."""
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(f"there is no model kind '{name}'", f"use one of {', '.join(KINDS)}") from None


def kinds(task: Task | None = None) -> list[Kind]:
    """Every kind, or those doing ``task``."""
    return [k for k in KINDS.values() if task is None or k.task is task]
