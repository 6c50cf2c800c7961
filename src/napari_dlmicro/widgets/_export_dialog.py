""""Export to bioimage.io…" next to a dock's model list: a small form on :class:`...state.export.ExportState`,
then the export job in a worker, with its progress on the dock's status line and in napari's activity dock."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.runtime.events import Notice, Progress
from napari_dlmicro.state.export import ExportState
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.workers import JobHandle, start_job


def _bind_text(state: ExportState, name: str, edit: QPlainTextEdit) -> QPlainTextEdit:
    """Keep a multi-line field and ``state.<name>`` in step."""
    edit.setPlainText(getattr(state, name))
    edit.textChanged.connect(lambda: setattr(state, name, edit.toPlainText()))
    return edit


class ExportDialog(QDialog):
    """The package's name, description, authors, licence, citations and file; OK starts the export."""

    def __init__(self, state: ExportState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export to bioimage.io")
        self.state = state
        form = QFormLayout(self)
        self.name_edit = bind(state, "name", QLineEdit(placeholderText="the model's name and kind"))
        self.description_edit = bind(state, "description", QLineEdit(placeholderText="the model's own"))
        self.authors_edit = _bind_text(state, "authors", QPlainTextEdit(placeholderText="one author a line"))
        self.licence_edit = bind(state, "licence", QLineEdit(toolTip="an SPDX licence identifier, e.g. CC-BY-4.0"))
        self.citations_edit = _bind_text(state, "citations", QPlainTextEdit(
            placeholderText="one a line: Author et al., title, year | 10.xxxx/yyyy"))
        for edit in (self.authors_edit, self.citations_edit):
            edit.setMaximumHeight(64)
        self.out_edit = bind(state, "out", QLineEdit())
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.out_edit, 1)
        row.addWidget(browse)
        form.addRow("Name", self.name_edit)
        form.addRow("Description", self.description_edit)
        form.addRow("Authors", self.authors_edit)
        form.addRow("Licence", self.licence_edit)
        form.addRow("Citations", self.citations_edit)
        form.addRow("Package", row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the package", self.state.out, "bioimage.io package (*.zip)")
        if path:
            self.state.out = path


class ModelExporter:
    """Exports the model a dock has chosen: asks for the metadata, runs the job, reports where the package went."""

    def __init__(self, dock, current_model: Callable[[], str | None], title: str,
                 show_status: Callable[[str], None] | None = None) -> None:
        self.dock, self.current_model, self.title = dock, current_model, title
        self.state = ExportState()
        self.state.restore()
        if show_status is not None:
            self.state.status.events.text.connect(show_status)
        self.handle: JobHandle | None = None
        self.button = QPushButton("Export to bioimage.io…", toolTip="Save the chosen model as a bioimage.io model "
                                  "package (.zip) that other tools (DeepImageJ, ilastik, QuPath, …) open")
        self.button.clicked.connect(self.ask)

    def prepare(self) -> bool:
        """Point the form at the dock's current model; False (with a message) when there is none."""
        ref = self.current_model()
        if not ref:
            show_error(f"{self.title}: choose a model to export first")
            return False
        if ref != self.state.model:
            self.state.for_model(ref, Path(self.state.out).parent if self.state.out else None)
        return True

    def ask(self) -> None:
        """Show the form; OK exports."""
        if self.prepare() and ExportDialog(self.state, self.dock).exec():
            self.start()

    def start(self) -> JobHandle | None:
        """Export with the form's values (the metadata checked first); the job's handle, or None."""
        if self.handle is not None:
            show_info("An export is already running.")
            return None
        try:
            self.state.meta()
            self.state.target()
        except UserError as exc:
            show_error(f"Export: {exc}")
            return None
        self.state.status.start(f"exporting {Path(self.state.model).name}…")
        self.button.setEnabled(False)
        self.handle = self.dock.track(start_job(
            self.state.job, title="Export to bioimage.io", on_event=self._on_event, on_result=self._on_result,
            on_error=self._on_error, on_finished=self._on_finished))
        return self.handle

    def _on_event(self, ev) -> None:
        if isinstance(ev, Progress):
            self.state.status.progress(ev)
        elif isinstance(ev, Notice):
            show_info(ev.message)

    def _on_result(self, exported) -> None:
        self.state.status.idle(f"bioimage.io package written: {exported.path}", done=True)
        show_info(f"bioimage.io package written to {exported.path}")

    def _on_error(self, message: str) -> None:
        self.state.status.idle(f"Export failed: {message}")
        show_error(f"Export: {message}")

    def _on_finished(self, cancelled: bool) -> None:
        self.handle = None
        self.button.setEnabled(True)
        if cancelled:
            self.state.status.idle("Export cancelled: nothing was written")
