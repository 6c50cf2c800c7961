"""Turn what the user named (catalogue name, stored name, folder, file) into a loaded model of the right kind."""
from __future__ import annotations

from pathlib import Path

import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.models.catalogue import CATALOGUE, pretrained_folder
from napari_dlmicro.core.models.folder import read_config
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.registry import KINDS, Task, get_kind
from napari_dlmicro.core.models.stardist.folder import is_official_folder, stardist_defaults


def resolve(ref: str | Path) -> str | Path:
    """A catalogue name as it is, a stored model's name as its folder, anything else as a path."""
    ref_s = str(ref)
    if ref_s in CATALOGUE:
        return ref_s
    path = Path(ref_s).expanduser()
    if not path.exists() and (store_dir() / ref_s).is_dir():
        return store_dir() / ref_s
    return path


def kind_of(ref: str | Path) -> str:
    """The kind of model ``ref`` names: from the catalogue, a weights file (Cellpose), or a folder's config."""
    ref = resolve(ref)
    if isinstance(ref, str):
        return CATALOGUE[ref].kind
    if ref.is_file():
        return "cellpose"
    if not ref.is_dir():
        names = ", ".join(CATALOGUE)
        raise UserError(f"no model called '{ref}'", f"use a catalogue name ({names}), a stored model, or a model folder")
    if is_official_folder(ref):
        return "stardist"  # an official StarDist folder: its config names no kind
    kind = str(read_config(ref).get("kind") or "unknown")
    if kind not in KINDS:
        raise UserError(f"'{ref.name}' holds a {kind} model, which this version cannot use",
                        "update napari-dlmicro, or pick another model")
    return kind


def load_model(ref: str | Path, device: torch.device | None = None):
    """Load any model (segmenter or restoration model) by catalogue name, stored name, folder or file."""
    kind = get_kind(kind_of(ref))
    target = resolve(ref)
    if kind.name == "cellpose" and isinstance(target, Path) and target.is_dir():
        target = target / str(read_config(target).get("weights", "cellpose_weights.pt"))
    if kind.name == "cellpose" and isinstance(target, str):
        target = target.split(":", 1)[1]
    return kind.loader()(target, device or torch.device("cpu"))


def load_segmenter(ref: str | Path, device: torch.device | None = None) -> Segmenter:
    """Load a segmentation model; a model of another kind is a clear error."""
    kind = get_kind(kind_of(ref))
    if kind.task is not Task.SEGMENT:
        raise UserError(f"'{Path(str(ref)).name}' holds a {kind.title} model, which cannot segment",
                        "pick a StarDist, Cellpose or semantic model for segmentation")
    return load_model(ref, device)


def model_defaults(ref: str | Path) -> dict[str, float]:
    """A model's own prediction settings, read from its files without loading it (what is known; may be empty)."""
    try:
        kind = get_kind(kind_of(ref))
    except UserError:
        return {}
    own = {s.name: s.default for s in kind.predict_settings}
    target = resolve(ref)
    folder = pretrained_folder(CATALOGUE[target]) if isinstance(target, str) and kind.name == "stardist" else target
    if kind.name == "stardist" and isinstance(folder, Path) and folder.is_dir():
        try:
            own.update(stardist_defaults(folder))
        except (UserError, OSError, ValueError, TypeError):
            pass  # an unreadable folder: the kind's defaults; loading it will say what is wrong
    return own
