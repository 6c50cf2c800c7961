"""The Denoising dock's training form: a thin view of :class:`...state.denoise.DenoiseState`.

Its number fields are built from the kind's declared settings (the same the
CLI's ``train n2v|care`` flags come from); CARE pairs come from a target
layer or from two folders.
"""
from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from napari_dlmicro.core.models.restoration.settings import TrainSettings
from napari_dlmicro.state.denoise import RESTORING_KINDS, DenoiseState
from napari_dlmicro.widgets._bind import bind
from napari_dlmicro.widgets._settings_form import SettingsForm


class DenoiseSettingsForm(QWidget):
    """Everything "Train" needs besides the layers; remembered between sessions."""

    def __init__(self, target_combo: QComboBox, state: DenoiseState | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state or DenoiseState()
        self.state.restore()
        self.kind = QComboBox()
        self.kind.addItems(list(RESTORING_KINDS))
        self.kind.setCurrentText(self.state.kind)
        self.target = target_combo
        self.pairs_btn = QPushButton("Pairs from folders…")
        self.pairs_btn.setToolTip("CARE: a folder of inputs and a folder of targets with the same file names")
        self.pairs_label = QLabel("", wordWrap=True)
        self.pairs_label.setVisible(False)
        self.axes = bind(self.state, "axes", QLineEdit())
        self.axes.setPlaceholderText("auto (YX, ZYX, TYX, CYX, ...)")
        self.name = bind(self.state, "name", QLineEdit())
        self.settings = SettingsForm(self.state.values, none_text="default")
        care_row = QHBoxLayout()
        care_row.addWidget(self.target, 1)
        care_row.addWidget(self.pairs_btn)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        for label, w in (("kind", self.kind), ("CARE target", care_row), ("", self.pairs_label),
                         ("axes", self.axes), ("", self.settings), ("save as", self.name)):
            form.addRow(label, w)
        self.kind.currentTextChanged.connect(self._on_kind)
        self.state.events.kind.connect(self._kind_changed)  # a kind chosen elsewhere (a script, a restored run)
        self.pairs_btn.clicked.connect(self._choose_pairs)
        self._show_kind(self.state.kind)

    def field(self, name: str):
        """The form's field for setting ``name``."""
        return self.settings.fields[name]

    minutes = property(lambda self: self.field("minutes"))
    epochs = property(lambda self: self.field("epochs"))
    patch = property(lambda self: self.field("patch"))
    batch = property(lambda self: self.field("batch_size"))
    channels = property(lambda self: self.field("channels"))

    @property
    def pair_folders(self) -> tuple[str, str] | None:
        """CARE's (inputs, targets) folders, or None to train on layers."""
        return self.state.pair_folders

    def _on_kind(self, kind: str) -> None:
        self.state.choose_kind(kind)
        self._show_kind(kind)

    def _kind_changed(self, kind: str) -> None:
        if self.kind.currentText() != kind:
            self.kind.blockSignals(True)
            self.kind.setCurrentText(kind)
            self.kind.blockSignals(False)
        self._show_kind(kind)

    def _show_kind(self, kind: str) -> None:
        for w in (self.target, self.pairs_btn, self.pairs_label):
            w.setEnabled(kind == "care")

    def _choose_pairs(self) -> None:
        inputs = QFileDialog.getExistingDirectory(self, "Folder of CARE inputs (low signal)")
        targets = QFileDialog.getExistingDirectory(self, "Folder of CARE targets (same file names)") if inputs else ""
        self.set_pair_folders(inputs or None, targets or None)

    def set_pair_folders(self, inputs: str | None, targets: str | None) -> None:
        """Train CARE on the files of two folders (matched by name) instead of on layers; None clears."""
        self.state.set_pair_folders(inputs, targets)
        folders = self.state.pair_folders
        self.pairs_label.setText(f"pairs: {folders[0]} → {folders[1]}" if folders else "")
        self.pairs_label.setVisible(folders is not None)

    def save(self) -> None:
        """Remember the current settings."""
        self.state.remember()

    def train_settings(self, axes: str | None, max_threads: int | None) -> TrainSettings:
        """The :class:`TrainSettings` these values describe (checked)."""
        return self.state.train_settings(axes, max_threads)
