"""What a blockwise run has finished, kept next to its output so a stopped run can continue.

The run folder (``.dlmicro-run`` inside the output group; Zarr readers never
look there) holds:

- ``run.json``: what the run is (input, model, settings, block plan, the
  normalisation it used). ``--resume`` continues only a run that matches it.
- ``raw.zarr``: provisional ids per block core, written by the segmentation
  pass (a live view while it runs).
- ``blocks/<key>.npz``: one per segmented block, written atomically after
  its pixels: its owned objects' scores, its spills and its measurements.
  Its presence is what "this block is done" means.
- ``composed/<key>.json``: one per core composed into the final labels, with
  the digest of the id offsets it used (a block is composed again when the
  offsets changed, e.g. after a failed block succeeded on resume).
- ``cancel``: created to ask every worker to stop at its next check.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_dlmicro.core.blockwise.plan import Block
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.runtime.cancel import CancelToken

RUN_FOLDER = ".dlmicro-run"


class DiskFull(UserError):
    """The disk holding the output filled up."""


def disk_full(path: Path, exc: OSError) -> DiskFull:
    return DiskFull(f"the disk holding {path} is full ({exc.strerror or exc})",
                    "free space there (or choose another output folder) and continue with --resume")


def write_guard(path: Path):
    """Turn a full disk into :class:`DiskFull` around a write (other OS errors pass through)."""
    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full(path, exc) from None
            return False
    return _Guard()


class RunState:
    """The run folder of one output."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def raw_path(self) -> Path:
        return self.folder / "raw.zarr"

    def create(self, manifest: dict[str, Any], resume: bool) -> None:
        """Write ``run.json``; on resume, check that it describes the same run."""
        path = self.folder / "run.json"
        if path.exists():
            old = json.loads(path.read_text())
            manifest = json.loads(json.dumps(manifest, default=str))
            if not resume:
                raise UserError(f"an unfinished run is already in {self.folder.parent}",
                                "continue it with --resume, or remove the output and start again")
            changed = sorted(k for k in manifest if k in old and old[k] != manifest[k])
            if changed:
                raise UserError(f"the run in {self.folder.parent} was started with other "
                                f"{', '.join(changed)}", "resume with the same input, model and settings, or "
                                "remove the output and start again")
            self.cancel_file.unlink(missing_ok=True)
            return
        (self.folder / "blocks").mkdir(parents=True, exist_ok=True)
        (self.folder / "composed").mkdir(parents=True, exist_ok=True)
        self._atomic_write(path, json.dumps(manifest, indent=1, default=str).encode())
        self.cancel_file.unlink(missing_ok=True)

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.folder / "run.json").read_text())

    # -- segmented blocks --------------------------------------------------
    def block_path(self, block: Block) -> Path:
        return self.folder / "blocks" / f"{block.key}.npz"

    def block_done(self, block: Block) -> bool:
        return self.block_path(block).is_file()

    def save_block(self, block: Block, arrays: dict[str, np.ndarray]) -> None:
        """Record a segmented block (atomically: a reader sees all of it or nothing)."""
        path = self.block_path(block)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            with write_guard(path), open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def load_block(self, block: Block, keys: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        with np.load(self.block_path(block)) as data:
            return {k: data[k] for k in (keys or data.files) if k in data.files}

    def done_blocks(self) -> set[str]:
        folder = self.folder / "blocks"
        return {p.stem for p in folder.glob("*.npz")} if folder.exists() else set()

    # -- composed blocks ---------------------------------------------------
    def composed_path(self, block: Block) -> Path:
        return self.folder / "composed" / f"{block.key}.json"

    def composed(self, block: Block, digest: str) -> bool:
        path = self.composed_path(block)
        try:
            return json.loads(path.read_text()).get("digest") == digest
        except (OSError, ValueError):
            return False

    def mark_composed(self, block: Block, digest: str, conflicts: int) -> None:
        self._atomic_write(self.composed_path(block), json.dumps({"digest": digest, "conflicts": conflicts}).encode())

    def conflicts(self) -> int:
        total = 0
        for p in (self.folder / "composed").glob("*.json"):
            total += int(json.loads(p.read_text()).get("conflicts", 0))
        return total

    # -- cancel ------------------------------------------------------------
    @property
    def cancel_file(self) -> Path:
        return self.folder / "cancel"

    def ask_cancel(self) -> None:
        with contextlib.suppress(OSError):
            self.cancel_file.touch()

    def token(self) -> CancelToken:
        return FileToken(self.cancel_file)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _atomic_write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            with write_guard(path):
                tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class FileToken(CancelToken):
    """A worker's cancel token: cancelled once the run's ``cancel`` file exists (looked at every 0.2 s)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._seen = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now - self._seen > 0.2:
            self._seen = now
            if self.path.exists():
                self._cancel.set()
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")
