"""What every subcommand shares: input lists, device flag, a terminal progress bar."""
from __future__ import annotations

import sys
from typing import Any

from ..core.events import Event, Job, Metrics, Notice, Progress, run_to_end
from ..core.io import image_name as stem  # noqa: F401 - the subcommands' name for it
from ..core.io import tiff_files as expand_inputs  # noqa: F401


def add_device_flag(parser) -> None:
    """``--device auto|cpu|cuda[:N]|mps``."""
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")


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
