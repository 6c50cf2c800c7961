"""The Denoising dock's training settings: kind, budget, patches, schedule, CARE pairs from folders."""
from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from napari_dlmicro.core.preferences import load_settings, save_settings

SECTION = "denoise"


def spin(lo: int, hi: int, value: int, step: int) -> QSpinBox:
    """An integer spin box."""
    w = QSpinBox()
    w.setRange(lo, hi), w.setValue(value), w.setSingleStep(step)
    return w


def dspin(lo: float, hi: float, value: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    """A float spin box."""
    w = QDoubleSpinBox()
    w.setDecimals(decimals), w.setRange(lo, hi), w.setValue(value), w.setSingleStep(step)
    return w


class DenoiseSettingsForm(QWidget):
    """Everything "Train" needs besides the layers; remembered between sessions."""

    def __init__(self, target_combo: QComboBox, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = QComboBox()
        self.kind.addItems(["n2v", "care"])
        self.target = target_combo
        self.pair_folders: tuple[str, str] | None = None
        self.pairs_btn = QPushButton("Pairs from folders…")
        self.pairs_btn.setToolTip("CARE: a folder of inputs and a folder of targets with the same file names")
        self.pairs_label = QLabel("")
        self.pairs_label.setVisible(False)
        self.axes = QLineEdit()
        self.axes.setPlaceholderText("auto (YX, ZYX, TYX, CYX, ...)")
        self.channels = QComboBox()
        self.channels.addItems(["independent", "joint"])
        from napari_dlmicro.core.models.restoration.train import LEARNING_RATES, TrainSettings

        d = TrainSettings()  # the dock starts from the same defaults as the CLI and the Python API
        self.minutes = dspin(0.05, 600, d.minutes or 3.0, 0.5)
        self.epochs = spin(0, 100_000, 0, 10)
        self.epochs.setSpecialValueText("use the time budget")
        self.epochs.setToolTip("epochs of 50 steps; 0 trains for the time budget in minutes instead")
        self.patch = spin(16, 512, d.patch, 16)
        self.batch = spin(1, 256, d.batch_size, 1)
        self.val_fraction = dspin(0.0, 0.5, d.val_fraction, 0.05)
        self.lr = dspin(0.0, 1e-1, 0.0, 1e-4, decimals=5)
        self.lr.setSpecialValueText("kind's default")
        self.lr.setToolTip("start of the schedule: a short warm-up, then a cosine decay over the budget. "
                           + ", ".join(f"{k.upper()} {v:g}" for k, v in LEARNING_RATES.items()) + " by default")
        self.augment = QCheckBox("flips and rotations")
        self.augment.setChecked(True)
        self.n2v2 = QCheckBox("N2V2 network (against checkerboard artefacts)")
        self.name = QLineEdit("n2v_model")
        care_row = QHBoxLayout()
        care_row.addWidget(self.target, 1), care_row.addWidget(self.pairs_btn)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for label, w in (("kind", self.kind), ("CARE target", care_row), ("", self.pairs_label),
                         ("axes", self.axes), ("channels", self.channels), ("minutes", self.minutes),
                         ("epochs", self.epochs), ("patch", self.patch), ("batch size", self.batch),
                         ("validation", self.val_fraction), ("learning rate", self.lr), ("augment", self.augment),
                         ("N2V", self.n2v2), ("save as", self.name)):
            form.addRow(label, w)
        self.kind.currentTextChanged.connect(self._on_kind)
        self.epochs.valueChanged.connect(lambda n: self.minutes.setEnabled(n == 0))
        self.pairs_btn.clicked.connect(self._choose_pairs)
        self.restore()
        self._on_kind(self.kind.currentText())

    def _on_kind(self, kind: str) -> None:
        self.name.setText(f"{kind}_model")
        for w in (self.target, self.pairs_btn, self.pairs_label):
            w.setEnabled(kind == "care")
        self.n2v2.setEnabled(kind == "n2v")

    def _choose_pairs(self) -> None:
        inputs = QFileDialog.getExistingDirectory(self, "Folder of CARE inputs (low signal)")
        targets = QFileDialog.getExistingDirectory(self, "Folder of CARE targets (same file names)") if inputs else ""
        self.set_pair_folders(inputs, targets) if inputs and targets else self.set_pair_folders(None, None)

    def set_pair_folders(self, inputs: str | None, targets: str | None) -> None:
        """Train CARE on the files of two folders (matched by name) instead of on layers; None clears."""
        self.pair_folders = (str(inputs), str(targets)) if inputs and targets else None
        self.pairs_label.setText(f"pairs: {inputs} → {targets}" if self.pair_folders else "")
        self.pairs_label.setVisible(self.pair_folders is not None)

    def values(self) -> dict[str, Any]:
        """The settings as plain values (what is remembered)."""
        return {"kind": self.kind.currentText(), "minutes": self.minutes.value(), "epochs": self.epochs.value(),
                "patch": self.patch.value(), "batch_size": self.batch.value(),
                "val_fraction": self.val_fraction.value(), "learning_rate": self.lr.value(),
                "augment": self.augment.isChecked(), "n2v2": self.n2v2.isChecked(),
                "channels": self.channels.currentText()}

    def save(self) -> None:
        """Remember the current settings."""
        save_settings(SECTION, self.values())

    def restore(self) -> None:
        """Put back the settings of the last run (defaults where none were saved)."""
        s = load_settings(SECTION)
        try:
            for key, box in (("minutes", self.minutes), ("epochs", self.epochs), ("patch", self.patch),
                             ("batch_size", self.batch), ("val_fraction", self.val_fraction), ("learning_rate", self.lr)):
                if key in s:
                    box.setValue(type(box.value())(s[key]))
            self.augment.setChecked(bool(s.get("augment", True)))
            self.n2v2.setChecked(bool(s.get("n2v2", False)))
            self.kind.setCurrentText(str(s.get("kind", "n2v")))
            self.channels.setCurrentText(str(s.get("channels", "independent")))
        except (TypeError, ValueError):
            pass

    def train_settings(self, axes: str | None, max_threads: int | None):
        """The :class:`TrainSettings` these values describe."""
        from napari_dlmicro.core.models.restoration.train import TrainSettings

        v = self.values()
        return TrainSettings(kind=v["kind"], axes=axes, channels=v["channels"], minutes=v["minutes"],
                             epochs=v["epochs"] or None, patch=v["patch"], batch_size=v["batch_size"],
                             val_fraction=v["val_fraction"], learning_rate=v["learning_rate"] or None, augment=v["augment"],
                             strategy="n2v2", n2v2_net=v["n2v2"], max_threads=max_threads)
