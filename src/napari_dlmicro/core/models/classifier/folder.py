"""Loading a classifier's model folder (see :mod:`.config` for what it holds)."""
from __future__ import annotations

from pathlib import Path

import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import reads_whole_folders
from napari_dlmicro.core.models.classifier.base import ObjectClassifier
from napari_dlmicro.core.models.classifier.config import config_classes
from napari_dlmicro.core.models.classifier.deep import DeepClassifier
from napari_dlmicro.core.models.classifier.fast import FastClassifier
from napari_dlmicro.core.models.folder import read_config
from napari_dlmicro.core.models.paths import store_dir


@reads_whole_folders
def load_classifier(ref: str | Path, device: torch.device | None = None) -> ObjectClassifier:
    """The classifier in folder ``ref`` (or stored under that name), fast or deep."""
    folder = Path(ref).expanduser()
    if not folder.exists() and (store_dir() / str(ref)).is_dir():
        folder = store_dir() / str(ref)
    config = read_config(folder)
    if config.get("kind") != "classifier":
        raise UserError(f"'{folder.name}' holds a {config.get('kind', 'unknown')} model, not a classifier",
                        "pick a classifier trained with napari-dlmicro")
    classes = config_classes(config, folder)
    which = config.get("classifier")
    if which == "fast":
        return FastClassifier.from_folder(folder, config, classes)
    if which == "deep":
        return DeepClassifier.from_folder(folder, config, classes, device)
    raise UserError(f"'{folder.name}' holds a {which!r} classifier, which this version cannot use",
                    "update napari-dlmicro, or re-train the classifier")
