"""Turn what the user named (catalogue name, folder, file) into a loaded model."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from .base import Segmenter
from .folder import read_config
from .store import CATALOGUE, fetch_pretrained, store_dir


def load_segmenter(ref: str | Path, device: torch.device | None = None) -> Segmenter:
    """Load a segmentation model by catalogue name, store name, or folder/file path."""
    device = device or torch.device("cpu")
    ref_s = str(ref)
    if ref_s in CATALOGUE:
        entry = CATALOGUE[ref_s]
        if entry.kind == "cellpose":
            from .cellpose import load_cellpose

            return load_cellpose(ref_s.split(":", 1)[1], device)
        from .stardist_io import load_official

        return load_official(fetch_pretrained(entry), device, name=entry.name)
    path = Path(ref_s).expanduser()
    if not path.exists() and (store_dir() / ref_s).is_dir():
        path = store_dir() / ref_s
    if path.is_file():
        from .cellpose import load_cellpose

        return load_cellpose(path, device)
    if not path.is_dir():
        names = ", ".join(CATALOGUE)
        raise UserError(f"no model called '{ref_s}'", f"use a catalogue name ({names}), a stored model, or a model folder")
    from .stardist_io import is_official_folder, load_official, load_ours

    if is_official_folder(path):
        return load_official(path, device)
    cfg = read_config(path)
    kind = cfg.get("kind")
    if kind == "stardist":
        return load_ours(path, device, cfg)
    if kind == "cellpose":
        from .cellpose import load_cellpose

        return load_cellpose(path / str(cfg.get("weights", "cellpose_weights.pt")), device)
    if kind == "semantic":
        from .semantic_segmenter import load_semantic_segmenter

        return load_semantic_segmenter(path, device)
    raise UserError(f"'{path.name}' holds a {kind or 'unknown'} model, which cannot segment",
                    "pick a StarDist, Cellpose or semantic model for segmentation")
