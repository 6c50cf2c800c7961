"""Files a job reads: TIFF lists from files and folders, names without extensions, and pairing by name."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from napari_dlmicro.core.errors import UserError

TIFF_SUFFIXES = (".tif", ".tiff")
# what a partner file may add to its image's name: a.tif <-> a_masks.tif, a_labels.tif, ...
PARTNER_SUFFIXES = ("_labels", "_masks", "_mask", "_gt", "_pred")
ZARR_MARKERS = (".zgroup", ".zarray", "zarr.json")  # what makes a folder a Zarr v2 or v3 store


def image_name(path: str | os.PathLike) -> str:
    """The file name without ``.tif``/``.tiff`` and without ``.ome``."""
    stem = Path(path).stem
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def tiff_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, folders expanded to their TIFF files, sorted; missing ones are an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and any((p / marker).is_file() for marker in ZARR_MARKERS):
            raise UserError(f"'{p.name}' is a Zarr store, and this command reads TIFF files",
                            "segment and denoise read OME-Zarr block by block; for this command, give TIFF files")
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in TIFF_SUFFIXES and not f.name.startswith("."))
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"input '{p}' does not exist", "check the path")
    if not out:
        raise UserError("no input images found", "give TIFF files or folders that hold them")
    return out


def name_key(path: str | os.PathLike, strip: Sequence[str] = ()) -> str:
    """The name two partner files share: :func:`image_name` without one of the ``strip`` suffixes."""
    name = image_name(path)
    for suffix in strip:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def pair_by_name(firsts: Sequence[Path], seconds: Sequence[Path], strip: Sequence[str] = PARTNER_SUFFIXES,
                 complete: bool = False, names: tuple[str, str] = ("image", "mask")) -> list[tuple[Path, Path]]:
    """``(first, second)`` file pairs whose names agree (``a.tif`` with ``a.tif``, ``a_masks.tif``, ...).

    Pairs come in the order of ``firsts``. With ``complete``, every file on
    either side must have its partner; otherwise files without one are
    skipped, and only no pair at all is an error. ``names`` say what the two
    sides hold, for the messages.
    """
    by_key: dict[str, Path] = {}
    for f in seconds:
        by_key.setdefault(name_key(f, strip), Path(f))
    pairs = [(Path(f), by_key[name_key(f, strip)]) for f in firsts if name_key(f, strip) in by_key]
    if complete:
        missing = [Path(f).name for f in firsts if name_key(f, strip) not in by_key]
        if missing:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise UserError(f"{len(missing)} {names[0]}(s) have no {names[1]} of the same file name ({shown})",
                            f"name each {names[1]} file like its {names[0]} file")
        extra = sorted(set(by_key) - {name_key(f, strip) for f in firsts})
        if extra:
            raise UserError(f"{len(extra)} {names[1]}(s) have no {names[0]} of the same name ({', '.join(extra[:3])})",
                            "remove them or add their partners")
    if not pairs:
        raise UserError(f"none of the {len(firsts)} {names[0]}s has a {names[1]} of the same name",
                        f"name each {names[1]} like its {names[0]} (a.tif -> a.tif or a_masks.tif)")
    return pairs
