"""What the command line was given: TIFF files, OME-Zarr images and plates, folders of either."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import TIFF_SUFFIXES
from napari_dlmicro.core.io.ome_zarr import ZARR_SUFFIXES, is_zarr, ome_metadata


@dataclass(frozen=True)
class Inputs:
    """Inputs sorted by kind: TIFF files, OME-Zarr images, OME-Zarr plates (or wells)."""

    tiffs: list[Path]
    images: list[Path]
    plates: list[Path]


def sort_inputs(paths: Sequence[str | os.PathLike]) -> Inputs:
    """Files and folders as given; a folder that is not itself Zarr is expanded to its TIFFs and Zarr stores."""
    tiffs: list[Path] = []
    images: list[Path] = []
    plates: list[Path] = []

    def add_zarr(p: Path) -> None:
        meta = ome_metadata(p)
        (plates if ("plate" in meta or "well" in meta) else images).append(p)

    for p in map(Path, paths):
        if is_zarr(p) or (p.is_dir() and p.name.lower().endswith(ZARR_SUFFIXES)):
            add_zarr(p)  # ome_metadata names what is wrong with a store that is not Zarr
        elif p.is_dir():
            found = False
            for child in sorted(p.iterdir()):
                if child.name.startswith("."):
                    continue
                if child.is_file() and child.suffix.lower() in TIFF_SUFFIXES:
                    tiffs.append(child)
                    found = True
                elif child.is_dir() and child.name.lower().endswith(ZARR_SUFFIXES) and is_zarr(child):
                    add_zarr(child)
                    found = True
            if not found:
                raise UserError(f"the folder {p} holds no TIFF files or OME-Zarr stores", "check the folder")
        elif p.is_file():
            tiffs.append(p)
        else:
            raise UserError(f"input '{p}' does not exist", "check the path")
    if not (tiffs or images or plates):
        raise UserError("no input images found", "give TIFF files, OME-Zarr stores or folders that hold them")
    return Inputs(tiffs, images, plates)
