"""Opening a bioimage.io model package: from a zip, a folder, its ``rdf.yaml``/``bioimageio.yaml``, or a zoo id
or DOI (downloaded once into the cache), checked before anything runs.

A zip is checked member by member before anything is unpacked: a member whose
path would land outside the package's folder (absolute, ``..``, a link) is
refused, and the package is unpacked into a temporary folder renamed into
place, so a refused or broken zip leaves nothing in the cache. The format
version is read from the YAML before the description is parsed, so a package of
a spec this version does not know is a clear message, not a parser's complaint.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bioimageio.spec import load_model_description, save_bioimageio_package_as_folder
from bioimageio.spec.model import v0_5
from bioimageio.spec.utils import read_yaml

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.bioimageio.sources import DOI_PATTERN, ZOO_URL, yaml_in, zoo_reference
from napari_dlmicro.core.models.paths import bioimageio_dir

KNOWN_VERSIONS = ("0.4", "0.5")  # model spec versions read (0.4 is converted to 0.5 on reading)

MAX_UNPACKED = 8 << 30  # bytes a package may unpack to


@dataclass
class Package:
    """An opened package: the folder its files are in, its YAML file and its description (spec 0.5)."""

    root: Path
    yaml: Path
    descr: v0_5.ModelDescr
    raw: dict[str, Any]  # the YAML as written, before conversion

    @property
    def name(self) -> str:
        return str(self.descr.name)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_members(z: zipfile.ZipFile, name: str) -> None:
    """Refuse a zip whose members would be written outside its folder (zip slip), links, or too much data."""
    total = 0
    for info in z.infolist():
        member = PurePosixPath(info.filename.replace("\\", "/"))
        if member.is_absolute() or ".." in member.parts or re.match(r"^[A-Za-z]:", info.filename):
            raise UserError(f"'{name}' holds a file that would be unpacked outside its folder ({info.filename})",
                            "do not use this package: it is damaged or made to overwrite other files")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UserError(f"'{name}' holds a link ({info.filename}), which a model package never needs",
                            "do not use this package: it is damaged or made to reach other files")
        total += info.file_size
    if total > MAX_UNPACKED:
        raise UserError(f"'{name}' would unpack to {total / 1e9:.1f} GB", "check that this is a model package")


def unpack(archive: Path) -> Path:
    """The folder ``archive`` is unpacked in (in the cache, once per content); checked first, atomic."""
    if not zipfile.is_zipfile(archive):
        raise UserError(f"'{archive.name}' is not a zip file", "give a bioimage.io package (.zip), its folder or "
                        "its rdf.yaml")
    folder = bioimageio_dir() / f"{archive.stem[:40]}-{_sha256(archive)[:16]}"
    if yaml_in(folder) is not None:
        return folder
    with zipfile.ZipFile(archive) as z:
        check_members(z, archive.name)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=folder.parent))
        try:
            z.extractall(tmp)
            if yaml_in(tmp) is None:
                raise UserError(f"'{archive.name}' holds no rdf.yaml or bioimageio.yaml at its top",
                                "give a bioimage.io model package")
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def download(ref: str) -> Path:
    """The folder of zoo model ``ref`` (an id or a DOI), downloaded into the cache on first use.

    Offline, the message names the address to download and the folder to unzip it into.
    """
    folder = bioimageio_dir() / "zoo" / re.sub(r"[^\w.-]+", "_", ref)
    if yaml_in(folder) is not None:
        return folder
    url = f"https://doi.org/{ref}" if DOI_PATTERN.match(ref) else ZOO_URL.format(id=ref)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        try:
            save_bioimageio_package_as_folder(ref, output_path=tmp / "package")
        except Exception as exc:  # any failure to fetch reads the same to the user
            raise UserError(f"'{ref}' is no model here, and the bioimage.io zoo could not be reached for it "
                            f"({type(exc).__name__})",
                            f"on a machine with internet, download {url}, unzip it, and put its files "
                            f"(rdf.yaml or bioimageio.yaml and the weights) into {folder}") from None
        os.replace(tmp / "package", folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def locate(ref: str | Path) -> Path:
    """The package YAML that ``ref`` names, unpacking or downloading the package first where needed."""
    path = Path(str(ref)).expanduser()
    if path.is_file() and path.suffix.lower() == ".zip":
        path = unpack(path)
    elif not path.exists():
        zoo = zoo_reference(str(ref))
        if zoo is None:
            raise UserError(f"no bioimage.io package at '{ref}'", "give a package (.zip), its folder, its rdf.yaml, "
                            "or a zoo id (bioimageio:affable-shark)")
        path = download(zoo)
    if path.is_dir():
        found = yaml_in(path)
        if found is None:
            raise UserError(f"'{path.name}' holds no rdf.yaml or bioimageio.yaml", "give a bioimage.io package")
        path = found
    return path


def check_format(raw: dict[str, Any], name: str) -> None:
    """Refuse descriptions that are not models, or of a model spec version this version does not read."""
    if not isinstance(raw, dict):
        raise UserError(f"'{name}' is not a bioimage.io description", "give the package's rdf.yaml")
    if raw.get("type") != "model":
        raise UserError(f"'{name}' describes a {raw.get('type', 'resource of no type')}, not a model",
                        "give a bioimage.io model package")
    version = str(raw.get("format_version", ""))
    if ".".join(version.split(".")[:2]) not in KNOWN_VERSIONS:
        raise UserError(f"'{name}' follows the model spec {version or '(no format_version)'}, which this version "
                        f"cannot read (it reads {' and '.join(KNOWN_VERSIONS)})",
                        "update napari-dlmicro and bioimageio.spec, or export the model in spec 0.5")


def open_package(ref: str | Path) -> Package:
    """Open and check the package ``ref`` names (see :func:`locate`); nothing of it runs yet."""
    yaml = locate(ref)
    try:
        raw = read_yaml(yaml)
    except Exception as exc:  # a YAML parser's error, whatever its type
        raise UserError(f"{yaml.name} of '{yaml.parent.name}' is not valid YAML ({exc})",
                        "restore the package from its source") from None
    check_format(raw, yaml.parent.name)
    try:
        descr = load_model_description(yaml, format_version="latest", perform_io_checks=False)
    except ValueError as exc:  # bioimageio.spec's word for a description that does not validate
        reason = " ".join(line.strip() for line in str(exc).splitlines()[1:3] if line.strip()) or str(exc)
        raise UserError(f"'{yaml.parent.name}' is not a valid bioimage.io model ({reason[:300]})",
                        "check the package with 'bioimageio validate', or export it again") from None
    if not isinstance(descr, v0_5.ModelDescr):
        raise UserError(f"'{yaml.parent.name}' is not a model of the spec 0.5", "export it again in spec 0.5")
    return Package(yaml.parent, yaml, descr, raw)
