"""What a job does with a task that failed: stop the run (a full disk, a cancel) or name it and go on."""
from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path

from napari_dlmicro.core.blockwise.state import DiskFull, RunState, disk_full
from napari_dlmicro.core.errors import Cancelled, UserError

NAMED = 5  # failures named in the final message; the rest are counted


def why(exc: BaseException) -> str:
    """An error in words: its message, or its type when it has none."""
    return str(exc) or type(exc).__name__


def stop_if_fatal(error: BaseException, output: Path, state: RunState | None = None) -> None:
    """Raise at once for what no other task can get past: a full disk (the others are told to stop) or a cancel."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        error = disk_full(output, error)
    if isinstance(error, DiskFull):
        if state is not None:
            state.ask_cancel()
        raise error
    if isinstance(error, Cancelled):
        raise error


def kept_failing(failed: Sequence[tuple[str, BaseException]], total: int, what: str, output: Path | None) -> UserError:
    """The error that ends a run in which some ``what`` (blocks, images) failed: each named with why, up to five."""
    names = "; ".join(f"{name}: {why(exc)}" for name, exc in failed[:NAMED])
    more = " ..." if len(failed) > NAMED else ""
    unfinished = f"; {output} is not marked complete" if output is not None else ""
    return UserError(f"{len(failed)} of {total} {what} kept failing ({names}{more}){unfinished}",
                     "fix the cause and run again with --resume: what finished is kept")
