"""Writing files and folders atomically: a reader never sees half of one, a crash never leaves half of one.

Each writer fills a hidden temporary sibling of the target and renames it into
place at the end; on any error the temporary is removed and the target is
left as it was.
"""
from __future__ import annotations

import functools
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from napari_dlmicro.core.errors import UserError

# held while a folder is swapped (two renames) and while a reader in this process reads one: a dock loading
# the checkpoint a training thread is replacing sees the old folder or the new one, never the gap between
_FOLDER_SWAP = threading.RLock()


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On any error the temporary file is removed and ``path`` is left as it
    was. Missing parent folders are created. File-system errors become a
    :class:`UserError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise _unwritable(path, err) from err
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _unwritable(path, err) from err
        raise


def _unwritable(path: Path, err: OSError) -> UserError:
    return UserError(
        f"could not write {path} ({err.strerror or err})",
        "check that the folder is writable and the disk has free space",
    )


def write_folder_atomically(folder: Path, write: Callable[[Path], None]) -> Path:
    """Let ``write`` fill a temporary sibling of ``folder``, then swap it into place.

    An existing folder is replaced only once the new one is complete.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(tmp)
        old = None
        with _FOLDER_SWAP:
            if folder.exists():
                old = folder.with_name(f".{folder.name}-old-{os.getpid()}")
                os.replace(folder, old)
            os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def reads_whole_folders(load: Callable) -> Callable:
    """Decorate a loader so that a folder swapped in by :func:`write_folder_atomically` is read whole.

    In this process the loader never runs between the two renames of a swap,
    so it reads all files of one version of the folder.
    """
    @functools.wraps(load)
    def locked(*args, **kwargs):
        with _FOLDER_SWAP:
            return load(*args, **kwargs)
    return locked
