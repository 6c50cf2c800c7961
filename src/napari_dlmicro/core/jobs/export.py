"""The export job: a model to a bioimage.io package, and, when asked, bioimage.io's own test of it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_dlmicro.core.models.bioimageio.meta import ExportMeta
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, Notice, Progress


@dataclass(frozen=True)
class Exported:
    """The package written, and the verdict of bioimage.io's test when it ran (``passed``/``failed``)."""

    path: Path
    check: str | None = None
    report: str = ""


def export_model_job(model: Any, out: str | Path, meta: ExportMeta = ExportMeta(), test_image: Any = None,
                     test_axes: str | None = None, check: bool = False, token: CancelToken = NEVER) -> Job:
    """Export ``model`` to ``out`` (see :func:`...models.bioimageio.export.export_job`); returns :class:`Exported`.

    With ``check``, bioimage.io's own test (``bioimageio.core.test_model``) then
    runs every weight format on the package's test input.
    """
    from napari_dlmicro.core.models.bioimageio.export import export_job  # imports bioimageio.spec (seconds)

    path = yield from export_job(model, out, meta, test_image, test_axes, token)
    if not check:
        return Exported(path)
    yield Progress(0, 1, "bioimage.io's own test of the package")
    status, report = check_package(path)
    yield Notice(f"bioimageio test: {status}", "info" if status == "passed" else "warning")
    return Exported(path, status, report)


def check_package(path: str | Path) -> tuple[str, str]:
    """Run bioimage.io's own test on a package: its status (``passed``/``failed``) and the failures' messages."""
    from bioimageio.core import test_model  # heavy (xarray, every backend): only when a test is asked for

    summary = test_model(Path(path))
    failures = [f"{d.name}: {e.msg}" for d in summary.details for e in d.errors]
    return str(summary.status), "\n".join(failures)
