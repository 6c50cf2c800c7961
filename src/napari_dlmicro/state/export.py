"""The "Export to bioimage.io…" form of the docks: what the package says about itself, and the job it makes.

Authors, licence and citations start from those of the last export (remembered
by :mod:`...core.preferences` whenever a package is written); the name and the
description start from the model's own when left empty.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.export import export_model_job
from napari_dlmicro.core.models.bioimageio.meta import DEFAULT_LICENCE, ExportMeta, parse_citation
from napari_dlmicro.core.preferences import export_defaults
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job
from napari_dlmicro.state.job_status import JobStatus


def split_authors(text: str) -> tuple[str, ...]:
    """Authors typed one a line or separated by semicolons."""
    return tuple(a.strip() for a in text.replace(";", "\n").splitlines() if a.strip())


@evented
@dataclass
class ExportState:
    """The export form: the model, where the package goes, and its metadata as typed."""

    model: str = ""
    out: str = ""
    name: str = ""
    description: str = ""
    authors: str = ""  # one a line (or separated by ;)
    licence: str = DEFAULT_LICENCE
    citations: str = ""  # one a line: 'text | DOI-or-URL'
    status: JobStatus = field(default_factory=JobStatus)

    def restore(self) -> None:
        """Fill authors, licence and citations from the last export."""
        saved = export_defaults()
        self.authors = "\n".join(str(a) for a in saved.get("authors") or ())
        self.licence = str(saved.get("licence") or DEFAULT_LICENCE)
        self.citations = "\n".join(str(c) for c in saved.get("citations") or ())

    def for_model(self, ref: str, folder: str | Path | None = None) -> None:
        """Export ``ref`` next time; the package is suggested as ``<model>.zip`` in ``folder`` (default: home)."""
        self.model = str(ref)
        stem = Path(str(ref)).name.replace(":", "_") or "model"
        self.out = str(Path(folder or Path.home()) / f"{stem}.zip")
        self.name = self.description = ""

    def meta(self) -> ExportMeta:
        """The typed metadata, checked: each citation needs a text and a DOI or URL."""
        citations = tuple(parse_citation(line) for line in self.citations.splitlines() if line.strip())
        return ExportMeta(name=self.name.strip() or None, description=self.description.strip() or None,
                          authors=split_authors(self.authors), licence=self.licence.strip() or None,
                          citations=citations)

    def target(self) -> Path:
        """Where the package goes (``.zip`` added when missing)."""
        if not self.model:
            raise UserError("no model is chosen to export", "pick a model in the dock's list first")
        if not self.out.strip():
            raise UserError("no file is chosen for the package", "choose where to save the .zip")
        out = Path(self.out.strip()).expanduser()
        return out if out.suffix.lower() == ".zip" else out.with_name(out.name + ".zip")

    def job(self, token: CancelToken = NEVER) -> Job:
        """The export job (returns :class:`...core.jobs.export.Exported`); bad metadata is a UserError now."""
        meta, out = self.meta(), self.target()
        return export_model_job(self.model, out, meta, token=token)
