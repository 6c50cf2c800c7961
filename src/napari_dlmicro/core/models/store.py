"""The models a user can pick: the pretrained catalogue and every model folder in the store.

``napari-dlmicro models`` and the docks list the same things. Writing a model
into the store announces it (:func:`notify_store_changed`) to every listener
(:func:`on_store_changed`), so every open dock lists it at once. Plain
callbacks, called in the thread that wrote: the docks bring them to napari's
thread themselves, and the core needs no event library.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.catalogue import CATALOGUE, pretrained_folder
from napari_dlmicro.core.models.cellpose.weights import pretrained_location
from napari_dlmicro.core.models.folder import CONFIG, read_config
from napari_dlmicro.core.models.paths import store_dir


@dataclass(frozen=True)
class StoredModel:
    """A model the user can pick: its name, kind, and where it lives."""

    name: str
    kind: str
    location: str
    available: bool
    description: str = ""


_LISTENERS: list[Callable[[str], None]] = []
_LOCK = threading.Lock()


def on_store_changed(callback: Callable[[str], None]) -> Callable[[], None]:
    """Call ``callback(folder)`` whenever a model is saved, replaced or deleted; returns what stops it."""
    with _LOCK:
        _LISTENERS.append(callback)

    def stop() -> None:
        with _LOCK:
            if callback in _LISTENERS:
                _LISTENERS.remove(callback)
    return stop


def notify_store_changed(folder: str | Path = "") -> None:
    """Tell every listener (the docks' model lists) that the store changed, from this thread."""
    with _LOCK:
        listeners = list(_LISTENERS)
    for callback in listeners:
        callback(str(folder))


def list_models() -> list[StoredModel]:
    """The pretrained catalogue, then every model folder in the store."""
    out = []
    for e in CATALOGUE.values():
        if e.kind == "cellpose":
            where = pretrained_location(e.name.split(":", 1)[1])[1]
            out.append(StoredModel(e.name, e.kind, str(where), where.is_file(), e.description))
        else:
            folder = pretrained_folder(e)
            out.append(StoredModel(e.name, e.kind, str(folder), (folder / CONFIG).is_file(), e.description))
    root = store_dir()
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                cfg = read_config(folder)
            except UserError:
                continue
            out.append(StoredModel(folder.name, str(cfg.get("kind", "?")), str(folder), True,
                                   str(cfg.get("description", "trained with napari-dlmicro"))))
    return out
