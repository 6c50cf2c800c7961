"""Whether a reference names a bioimage.io package, decided without reading or downloading it.

Kept free of ``bioimageio.spec`` (seconds to import), so that the model loader
can ask it of every reference it meets.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

YAML_NAMES = ("rdf.yaml", "bioimageio.yaml")
ZOO_PREFIX = "bioimageio:"
_ZOO_ID = re.compile(r"^[a-z]+-[a-z]+(?:/[\w.]+)?$")  # 'affable-shark', 'affable-shark/1.1'
DOI_PATTERN = re.compile(r"^(?:https?://doi\.org/)?(10\.\d{4,9}/\S+)$")
ZOO_URL = "https://hypha.aicell.io/bioimage-io/artifacts/{id}/create-zip-file"


def zoo_reference(ref: str) -> str | None:
    """The zoo id or DOI that ``ref`` names (``bioimageio:ID``, ``ID``, ``10.xxxx/yyy``), or None."""
    text = str(ref).strip()
    if text.startswith(ZOO_PREFIX):
        return text[len(ZOO_PREFIX):]
    doi = DOI_PATTERN.match(text)
    if doi:
        return doi.group(1)
    return text if _ZOO_ID.match(text) else None


def yaml_in(folder: Path) -> Path | None:
    """The package YAML of ``folder`` (``rdf.yaml``, ``bioimageio.yaml`` or ``*.bioimageio.yaml``), or None."""
    for name in YAML_NAMES:
        if (folder / name).is_file():
            return folder / name
    found = sorted(folder.glob("*.bioimageio.yaml"))
    return found[0] if found else None


def is_package(ref: str | Path) -> bool:
    """True when ``ref`` names a bioimage.io package (a file, folder or zoo id); nothing is downloaded."""
    path = Path(str(ref)).expanduser()
    if path.is_dir():
        return yaml_in(path) is not None
    if path.is_file():
        if path.name in YAML_NAMES or path.name.endswith(".bioimageio.yaml"):
            return True
        return path.suffix.lower() == ".zip" and zipfile.is_zipfile(path) and _zip_yaml(path) is not None
    return not path.exists() and zoo_reference(str(ref)) is not None


def _zip_yaml(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    top = [n for n in names if "/" not in n.rstrip("/")]
    for name in YAML_NAMES:
        if name in top:
            return name
    return next((n for n in top if n.endswith(".bioimageio.yaml")), None)
