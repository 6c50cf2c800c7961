"""A classifier's model folder on disk: ``config.json`` and one safetensors file, written atomically.

``config.json`` holds ``kind: "classifier"``, which classifier (``fast`` or
``deep``), the classes (name and colour, in order), the features or the
crop it reads, the channels and dimensionality it takes, the training
history and held-out assessment; the weights are safetensors (the forest's
arrays, or the network's tensors): numbers only, nothing that runs.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import write_folder_atomically
from napari_dlmicro.core.models.classifier.classes import ClassSpec, classes_from_dicts
from napari_dlmicro.core.models.folder import CONFIG, FORMAT_VERSION


def write_model_folder(folder: str | Path, config: dict[str, Any], write_weights: Callable[[Path], None]) -> Path:
    """``config.json`` and what ``write_weights(tmp_folder)`` writes, swapped into ``folder`` when complete."""
    config = {"format_version": FORMAT_VERSION, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), **config}

    def write(tmp: Path) -> None:
        write_weights(tmp)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=_jsonable))

    return write_folder_atomically(Path(folder), write)


def config_classes(config: dict[str, Any], folder: Path) -> tuple[ClassSpec, ...]:
    """The classes a classifier's config lists, checked."""
    items = config.get("classes")
    if not isinstance(items, list) or len(items) < 2:
        raise UserError(f"config.json of '{folder.name}' lists no classes", "re-train the classifier")
    return classes_from_dicts(items)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
