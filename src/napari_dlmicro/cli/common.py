"""What every subcommand shares: input lists, device flag, a terminal progress bar."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.events import Event, Job, Metrics, Notice, Progress, run_to_end

TIFF_SUFFIXES = (".tif", ".tiff")


def add_device_flag(parser) -> None:
    """``--device auto|cpu|cuda[:N]|mps``."""
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")


def expand_inputs(paths: list[str]) -> list[Path]:
    """Files as given, folders expanded to their TIFF files, sorted; missing ones are an error."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in TIFF_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"input '{p}' does not exist", "check the path")
    if not out:
        raise UserError("no input images found", "give TIFF files or folders that hold them")
    return out


def stem(path: Path) -> str:
    """File name without .tif/.tiff/.ome.tif."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


class TerminalProgress:
    """Progress bar on stderr (tqdm) for a job's events; notices printed above it."""

    def __init__(self, desc: str, enabled: bool | None = None):
        from tqdm import tqdm

        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(total=1, desc=desc, disable=not self.enabled, leave=False, file=sys.stderr)

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, Progress):
            self.bar.total = max(ev.total, 1)
            self.bar.n = ev.done
            if ev.message:
                self.bar.set_postfix_str(ev.message, refresh=False)
            self.bar.refresh()
        elif isinstance(ev, Notice):
            self.bar.write(f"{ev.level}: {ev.message}", file=sys.stderr)
        elif isinstance(ev, Metrics) and self.enabled:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in ev.values.items()}, refresh=True)

    def close(self) -> None:
        self.bar.close()


def run_with_progress(job: Job, desc: str) -> Any:
    """Drive a job with a terminal progress bar; return its result."""
    bar = TerminalProgress(desc)
    try:
        return run_to_end(job, bar)
    finally:
        bar.close()
