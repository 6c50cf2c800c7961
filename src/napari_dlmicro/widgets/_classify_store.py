"""The Classification dock's stored classifiers: list them, apply one to the image, save the one shown
(a part of :class:`..classification.ClassificationWidget`, beside :class:`._classify_actions.ClassifyActions`,
whose one-job-at-a-time ``_start`` runs these jobs)."""
from __future__ import annotations

from pathlib import Path

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.fast import FastClassifier
from napari_dlmicro.core.models.store import list_models
from napari_dlmicro.state.classify_jobs import Update, apply_job, save_job
from napari_dlmicro.widgets._lazy_layers import held_data


class ClassifyStore:
    """Stored classifiers in the dock: the list, Classify and Save to store."""

    def _refresh_models(self) -> None:
        combo = self.form.model_combo
        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        for m in list_models():
            if m.kind == "classifier":
                combo.addItem(m.name, m.location)
        combo.setCurrentIndex(max(0, combo.findData(current)))
        combo.blockSignals(False)

    def on_store_changed(self, folder: str) -> None:
        """A model was saved: list it among the stored classifiers."""
        self._refresh_models()

    def classify(self, ref: str | None = None) -> None:
        """Apply the stored classifier ``ref`` (default: the one chosen) to the image, every time point."""
        ref = ref or self.form.model_combo.currentData()
        try:
            if not ref:
                raise UserError("no stored classifier is chosen", "Save a classifier, or pick one from the list")
            if self.handle is not None:
                raise UserError("a job is running", "wait for it, or Cancel it")
            image, labels, timed = self._layers()
            image_data, labels_data = held_data(image, "classify"), held_data(labels, "classify")
        except UserError as exc:
            self._error(exc)
            return
        measured, previous, existing = self.measured, self._maps.get(()), labels.features
        self._start(lambda token: apply_job(ref, image_data, labels_data, timed, previous=previous,
                                            measured=measured, existing=existing, token=token),
                    self._on_classified, f"classifying with '{Path(str(ref)).name}'…", long=True)

    def _on_classified(self, u: Update) -> None:
        self.state.adopt_classes(u.model.classes)
        self._show(u)
        self.assessment = u.model.assessment
        self.state.show_assessment(self.assessment, 0)
        self.state.status.idle(f"classified with '{u.model.name}'", done=True)

    def save(self) -> None:
        """Save the classifier shown (with its classes and held-out score) into the model store."""
        try:
            if self.model is None:
                raise UserError("there is no classifier to save yet", "label objects of every class (fast), or "
                                "Train")
            if self.handle is not None:
                raise UserError("a job is running", "wait for it, or Cancel it")
            folder = self.state.save_folder()
        except UserError as exc:
            self._error(exc)
            return
        model = self.model
        fast = isinstance(model, FastClassifier)
        assessment = self.assessment if not fast or self._assessed == self.update.version else None
        provenance = {"data": {"images": [self.state.image], "labelled": len(self.state.table)}}
        if fast:
            provenance["training"] = {"classifier": "fast", **self.state.fit_settings()}
        self._start(lambda token: save_job(model, folder, assessment, provenance, token),
                    lambda path: self.state.status.idle(f"saved '{path.name}' to the model store", done=True),
                    f"saving '{folder.name}'…", long=True)
