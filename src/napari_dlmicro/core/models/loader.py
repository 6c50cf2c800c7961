"""Turn what the user named (catalogue name, stored name, folder, file, bioimage.io package) into a loaded model of
the right kind.

A bioimage.io package (a zip, its folder or YAML, a zoo id or DOI) runs as one of
our kinds (:mod:`.bioimageio.load`); packages whose only runnable weights need
their own Python code load only with ``trust_code``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from napari_dlmicro.core.errors import UntrustedCode, UserError
from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.models.bioimageio.sources import is_package
from napari_dlmicro.core.models.catalogue import CATALOGUE, pretrained_folder
from napari_dlmicro.core.models.folder import read_config
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.registry import (
    KINDS,
    Task,
    get_kind,
    load_package,
    package_code_to_trust,
    package_kind,
)
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


def _is_package(ref: str | Path) -> bool:
    """True for a bioimage.io package: a catalogue or stored model's name never is one."""
    target = resolve(ref)
    return not isinstance(target, str) and is_package(target)


def kind_of(ref: str | Path) -> str:
    """The kind of model ``ref`` names: from the catalogue, a bioimage.io package, a weights file (Cellpose), or a
    folder's config."""
    if _is_package(ref):
        return package_kind(resolve(ref))
    ref = resolve(ref)
    if isinstance(ref, str):
        return CATALOGUE[ref].kind
    if ref.is_file():
        return "cellpose"
    if not ref.is_dir():
        names = ", ".join(CATALOGUE)
        raise UserError(f"no model called '{ref}'",
                        f"use a catalogue name ({names}), a stored model, a model folder "
                        "or a bioimage.io package")
    if is_official_folder(ref):
        return "stardist"  # an official StarDist folder: its config names no kind
    kind = str(read_config(ref).get("kind") or "unknown")
    if kind not in KINDS:
        raise UserError(f"'{ref.name}' holds a {kind} model, which this version cannot use",
                        "update napari-dlmicro, or pick another model")
    return kind


def code_to_trust(ref: str | Path) -> UntrustedCode | None:
    """What loading ``ref`` would run of the model's own Python code (a bioimage.io package's architecture
    source), for the user to confirm first; None for every model that runs without such code."""
    if not _is_package(ref):
        return None
    return package_code_to_trust(resolve(ref))


def load_model(ref: str | Path, device: torch.device | None = None, trust_code: bool = False):
    """Load any model (segmenter or restoration model) by catalogue name, stored name, folder, file or package.

    ``trust_code`` lets a bioimage.io package whose only runnable weights are a torch
    state dict run the Python code that builds its network.
    """
    if _is_package(ref):
        return load_package(resolve(ref), device or torch.device("cpu"), trust_code=trust_code)
    kind = get_kind(kind_of(ref))
    target = resolve(ref)
    if kind.name == "cellpose" and isinstance(target, Path) and target.is_dir():
        target = target / str(read_config(target).get("weights", "cellpose_weights.pt"))
    if kind.name == "cellpose" and isinstance(target, str):
        target = target.split(":", 1)[1]
    return kind.loader()(target, device or torch.device("cpu"))


def load_segmenter(ref: str | Path, device: torch.device | None = None, trust_code: bool = False) -> Segmenter:
    """Load a segmentation model; a model of another kind is a clear error."""
    kind = get_kind(kind_of(ref))
    if kind.task is not Task.SEGMENT:
        raise UserError(f"'{Path(str(ref)).name}' holds a {kind.title} model, which cannot segment",
                        "pick a StarDist, Cellpose or semantic model for segmentation")
    return load_model(ref, device, trust_code=trust_code)


def model_defaults(ref: str | Path) -> dict[str, float]:
    """A model's own prediction settings, read from its files without loading it (what is known; may be empty)."""
    try:
        kind = get_kind(kind_of(ref))
    except UserError:
        return {}
    own = {s.name: s.default for s in kind.predict_settings}
    if _is_package(ref):
        return own  # a package's own values are known once it is loaded
    target = resolve(ref)
    folder = pretrained_folder(CATALOGUE[target]) if isinstance(target, str) and kind.name == "stardist" else target
    if kind.name == "stardist" and isinstance(folder, Path) and folder.is_dir():
        # an unreadable folder: the kind's defaults; loading it will say what is wrong
        with contextlib.suppress(UserError, OSError, ValueError, TypeError):
            own.update(stardist_defaults(folder))
    return own
