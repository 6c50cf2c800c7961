"""What every subcommand shares: flags built from declared settings, and running a job with a progress bar.

A job runs in a worker thread while the main thread shows its progress and
waits; Ctrl-C cancels the job's token, so it stops at its next check (within
a second), keeps what it finished and leaves no half-written file.
"""
from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.runtime import offload
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.cluster import ClusterChoice
from napari_dlmicro.core.runtime.devices import DEVICE_CHOICES
from napari_dlmicro.core.runtime.events import Event, Job, Metrics, Notice, Progress
from napari_dlmicro.core.settings import Setting

STOP_WAIT_S = 30.0  # how long Ctrl-C waits for a cancelled job to unwind before giving up on it


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda[:N]|mps``."""
    parser.add_argument("--device", default="auto", help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default: auto)")


def setting_type(spec: Setting) -> Callable[[str], Any]:
    """An argparse ``type`` that checks a value against ``spec`` (so ``--tile -5`` is refused with its range)."""
    def convert(text: str) -> Any:
        try:
            return spec.check(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = spec.name  # argparse names the type in its messages
    return convert


def add_setting_flags(parser: argparse.ArgumentParser, specs: Sequence[Setting], title: str | None = None,
                      show_defaults: bool = True) -> None:
    """One flag per setting, checked against its declared range; an unset flag stays None (the default applies)."""
    group = parser.add_argument_group(title) if title else parser
    for s in specs:
        default = f" (default: {_shown(s.default)})" if show_defaults else ""
        bounds = f" [{s.range_text()}]" if s.range_text() else ""
        help_text = f"{s.help}{bounds}{default}"
        if s.type is bool and not s.many:
            group.add_argument(s.flag, dest=s.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(s.flag, dest=s.name, type=setting_type(s), default=None,
                               metavar=s.name.upper(), help=help_text)


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def given(args: argparse.Namespace, specs: Sequence[Setting]) -> dict[str, Any]:
    """The settings the user gave on the command line (the rest keep their defaults)."""
    return {s.name: getattr(args, s.name) for s in specs if getattr(args, s.name, None) is not None}


def output_folder(path: str | Path) -> Path:
    """``path`` as an output folder: refused when a file is in the way (created later, when there is output)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"the output '{path}' is a file, not a folder",
                        "give a folder for -o (it is created if needed)")
    return path


class TerminalProgress:
    """Progress bar on stderr (tqdm) for a job's events; notices printed above it."""

    def __init__(self, desc: str, enabled: bool | None = None):
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
            self.bar.write(f"{ev.level.value}: {ev.message}", file=sys.stderr)
        elif isinstance(ev, Metrics) and self.enabled:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in ev.values.items()}, refresh=True)

    def write(self, text: str) -> None:
        """A line above the bar."""
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def run_with_progress(make_job: Callable[[CancelToken], Job], desc: str) -> Any:
    """Run ``make_job(token)`` in a worker thread with a terminal progress bar; return its result.

    Ctrl-C cancels the token and waits for the job to unwind (it checks the
    token within a second); then :class:`Cancelled` is raised here. The job's
    GIL-holding geometry (stardist's NMS and rendering, measurements) runs in
    the helper process, as in napari: a C call that holds the lock for
    seconds would otherwise keep Ctrl-C from being seen until it returns.
    """
    token = CancelToken()
    bar = TerminalProgress(desc)
    outcome: dict[str, Any] = {}
    lock = threading.Lock()
    events: list[Event] = []
    wake = threading.Event()

    def work() -> None:
        offload.use_process_pool(True)
        try:
            job = make_job(token)
            while True:
                try:
                    ev = next(job)
                except StopIteration as stop:
                    outcome["value"] = stop.value
                    return
                with lock:
                    events.append(ev)
                wake.set()
        except BaseException as exc:  # re-raised in the main thread
            outcome["error"] = exc
        finally:
            outcome["done"] = True
            wake.set()

    threading.Thread(target=offload.warm_up, name="dlmicro-helper-start", daemon=True).start()
    thread = threading.Thread(target=work, name="dlmicro-cli-job", daemon=True)
    thread.start()
    try:
        while True:
            try:
                wake.wait(0.1)
                wake.clear()
                with lock:
                    batch, events[:] = list(events), []
                for ev in batch:
                    bar(ev)
                if outcome.get("done"):
                    break
            except KeyboardInterrupt:
                token.cancel()
                bar.write("cancelling: stopping at the next check, keeping what is finished")
                thread.join(timeout=STOP_WAIT_S)
                raise Cancelled("interrupted") from None
    finally:
        bar.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


MANY_FILES = 32  # from this many TIFF files on, they are spread over dask workers even without --workers


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """``--workers N | --scheduler ADDRESS``, ``--block N``, ``--resume``, ``--fill-missing``."""
    group = parser.add_argument_group("big images, plates and clusters (dask.distributed)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, default=None, metavar="N",
                       help="local dask workers (default: chosen for this machine)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="join a running dask scheduler, e.g. tcp://HOST:8786 (a `dask scheduler` with "
                            "`dask worker`s, or a dask-jobqueue SLURM/LSF cluster)")
    group.add_argument("--block", type=_positive, default=None, metavar="N",
                       help="block size in pixels along Y and X for OME-Zarr and big TIFF inputs (default: 1024); "
                            "memory per worker follows it, not the image size")
    group.add_argument("--resume", action="store_true",
                       help="continue a stopped or crashed run from the blocks and files already written")
    group.add_argument("--fill-missing", action="store_true",
                       help="read chunks missing from a Zarr store as zeros (for stores that leave empty chunks "
                            "out on purpose) instead of refusing them")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def cluster_choice(args: argparse.Namespace) -> ClusterChoice:
    """The :class:`ClusterChoice` the flags name."""
    return ClusterChoice(workers=args.workers, scheduler=args.scheduler)


def wants_cluster(args: argparse.Namespace, n_files: int) -> bool:
    """True when TIFF files go to dask workers: asked for, or many of them."""
    return bool(args.workers or args.scheduler) or n_files >= MANY_FILES
