"""The pretrained catalogue: models fetched by name, downloaded once into the cache folder.

Without internet the error names the URL to download and the folder to unzip it into.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.folder import CONFIG
from napari_dlmicro.core.models.paths import cache_dir

_STARDIST_RELEASE = "https://github.com/stardist/stardist-models/releases/download/v0.1"


@dataclass(frozen=True)
class CatalogueEntry:
    """A pretrained model that can be fetched by name."""

    name: str  # e.g. "stardist:2D_versatile_fluo"
    kind: str
    description: str
    url: str = ""
    sha256: str = ""


CATALOGUE: dict[str, CatalogueEntry] = {
    e.name: e
    for e in (
        CatalogueEntry("stardist:2D_versatile_fluo", "stardist", "StarDist 2D, fluorescent nuclei (DSB2018 and more)",
                       f"{_STARDIST_RELEASE}/python_2D_versatile_fluo.zip",
                       "4ad678d0758eed6e55625f1b5ae30771e59adb79f1239e09b9772eac8846c3dd"),
        CatalogueEntry("stardist:2D_versatile_he", "stardist", "StarDist 2D, H&E-stained nuclei (RGB)",
                       f"{_STARDIST_RELEASE}/python_2D_versatile_he.zip",
                       "f1696ef0631bd7e1c0e5c0d3017e2b4c6a95e284c6aab9c22fc2f08317817b28"),
        CatalogueEntry("stardist:2D_paper_dsb2018", "stardist", "StarDist 2D, the DSB2018 model of the paper",
                       f"{_STARDIST_RELEASE}/python_2D_paper_dsb2018.zip",
                       "4c11cf68512341d9e8ce3d1278c64ceb8ac400582739f85fcab079a2e82840d2"),
        CatalogueEntry("stardist:3D_demo", "stardist", "StarDist 3D demo model (synthetic nuclei)",
                       f"{_STARDIST_RELEASE}/python_3D_demo.zip",
                       "ea05831eb5acc8a2fd31eaa23f4460a196a9af53b14f40affb9d80885f699f90"),
        CatalogueEntry("cellpose:cpsam", "cellpose",
                       "Cellpose-SAM generalist (cells and nuclei; ~1.2 GB; best on a GPU)"),
    )
}


def pretrained_folder(entry: CatalogueEntry) -> Path:
    """Where a catalogue entry is (or will be) unpacked."""
    return cache_dir() / entry.name.replace(":", "_")


def fetch_pretrained(entry: CatalogueEntry, report: Callable[[int, int], None] | None = None) -> Path:
    """The unpacked folder of a catalogue model, downloading it on first use.

    Without internet, the error names the URL and the folder to unzip it into.
    """
    folder = pretrained_folder(entry)
    if (folder / CONFIG).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        archive = tmp / "model.zip"
        try:
            _download(entry.url, archive, report)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise UserError(
                f"could not download {entry.name} ({getattr(exc, 'reason', exc)})",
                f"on a machine with internet, download {entry.url}, unzip it, and put its files "
                f"(config.json, weights_best.h5, thresholds.json) into {folder}",
            ) from None
        if entry.sha256 and _sha256(archive) != entry.sha256:
            raise UserError(f"the download of {entry.name} is corrupt (checksum mismatch)", "try again")
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp / "unzipped")
        configs = list((tmp / "unzipped").rglob(CONFIG))
        if not configs:
            raise UserError(f"the archive of {entry.name} holds no config.json", f"check {entry.url}")
        os.replace(configs[0].parent, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _download(url: str, dest: Path, report) -> None:
    with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        done = 0
        while chunk := response.read(1 << 20):
            out.write(chunk)
            done += len(chunk)
            if report:
                report(done, total)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
