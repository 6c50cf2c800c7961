"""The Classification dock's jobs and actions: refit, score, train deep, why, suggest and export (a part
of :class:`..classification.ClassificationWidget`; stored classifiers are in :mod:`._classify_store`).

One job runs at a time (the held-out score aside, which runs beside it);
what is asked for meanwhile waits in a queue and runs, once, when the job
ends, so a burst of clicks costs one refit after the running one. A result
is shown only if it belongs to the job the dock is waiting for: a cancelled
job's late result is dropped. The clicks live in the state and are changed
only by the user and by a carry-over to new labels, never by a failed job.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from napari.utils.notifications import show_error, show_info

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.labels.measure import write_csv
from napari_dlmicro.core.models.classifier.deep import DeepClassifier
from napari_dlmicro.core.models.classifier.table import write_class_csv
from napari_dlmicro.core.runtime.events import Metric, Metrics, Progress
from napari_dlmicro.state.classify_jobs import (
    Refresh,
    Update,
    Why,
    assess_job,
    deep_job,
    refresh_job,
    why_job,
)
from napari_dlmicro.widgets._classify_layers import (
    ensure_class_layer,
    show_points,
    show_why,
    suggest_layer_name,
    write_features,
)
from napari_dlmicro.workers import JobHandle, start_job

TITLE = "Classification"


class ClassifyActions:
    """The dock's jobs and actions; the dock provides the layers, the state, the form and the click handling."""

    # -- one job at a time ------------------------------------------------------------------------------
    def _start(self, make_job, on_result: Callable, status: str, *, long: bool = False, on_event=None,
               title: str = TITLE, bar: bool = True) -> JobHandle:
        holder: dict[str, JobHandle] = {}

        def result(value) -> None:
            handle = holder.get("h")
            if handle is not None and handle is self.handle and not handle.cancelled:
                self._guard(on_result, value)

        self._failed = False
        if bar:
            self.state.status.start(status)
        else:  # the progress bar stays: QProgressBar.setValue repaints at once, napari's canvas with it
            self.state.status.running, self.state.status.text = True, status
        progress = self._on_progress if bar else self._on_quick_progress
        handle = start_job(make_job, title=title, on_event=on_event or progress, on_result=result,
                           on_error=self._on_job_error,
                           on_finished=lambda cancelled: self._on_finished(holder.get("h"), cancelled), bar=bar)
        self.handle = holder["h"] = self.track(handle)
        self.form.busy(True) if long else self.form.cancel_button.setEnabled(True)
        return handle

    def _on_progress(self, ev) -> None:
        if isinstance(ev, Progress):
            self.state.status.progress(ev)

    def _on_quick_progress(self, ev) -> None:
        if isinstance(ev, Progress) and ev.message:
            self.state.status.text = ev.message

    def _on_job_error(self, message: str) -> None:
        self._failed = True
        self.state.status.idle(f"Error: {message}")

    def _on_finished(self, handle: JobHandle | None, cancelled: bool) -> None:
        if handle is not self.handle:
            return
        self.handle = None
        self.form.busy(False)
        self.state.settle(None)
        if cancelled:
            self.state.status.idle("Cancelled: the clicks are kept")
        elif self.state.status.running:
            self.state.status.idle("Done", done=True)
        queued, self._queued = dict(self._queued), {}
        if self._failed or cancelled:
            queued.pop("train", None)  # it would meet the same error
        for fn in queued.values():
            fn()

    def _when_idle(self, key: str, fn: Callable[[], None]) -> bool:
        """Run ``fn`` now if no job runs (True), else once the running one ends."""
        if self.handle is None:
            return True
        self._queued[key] = fn
        return False

    def cancel(self) -> None:
        """End the running job now (the clicks are kept; a deep training keeps its best checkpoint)."""
        self._queued.clear()
        for handle in (self.handle, self._assessing):
            if handle is not None and not handle.finished:
                handle.cancel()

    def stop(self) -> None:
        """End a deep training after its step: the best weights are kept, saved and used to classify."""
        if self.handle is not None and not self.handle.finished:
            self.handle.stop()
            self.state.status.text = "stopping: keeping the best weights…"

    def _error(self, exc: UserError | str) -> None:
        show_error(f"{TITLE}: {exc}")
        if self.handle is None:
            self.state.status.idle(f"Error: {exc}")

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except UserError as exc:
            self._error(exc)
            return None

    # -- the fast classifier: refit and repredict ----------------------------------------------------------
    def refresh(self, explicit: bool = False) -> None:
        """Carry the clicks over and measure if the labels changed; then refit and classify every object
        (when retraining live, or ``explicit``: Train)."""
        if not self._when_idle("refresh", lambda: self.refresh(explicit)):
            return
        try:
            image, labels, where = self._frames()
            settings = self.state.fit_settings()
            if explicit:
                self.state.check_ready()
        except UserError as exc:
            self._error(exc)
            return
        if not explicit and not np.any(labels):
            # a layer just made (a segmentation about to fill it) or cleared: nothing is wrong yet, and its
            # next edit measures it
            self.state.status.text = f"no objects in {self.state.labels} yet: segment the image or paint objects"
            return
        fit = self.state.kind == "fast" and (explicit or self.state.live)
        measured, classes, version = self.measured, self.state.classes, self._version
        # a copy: the shown features are rewritten in place while the job reads these
        previous, existing = self._previous(where), self.labels_layer().features.copy()
        table = self.state.snapshot()
        measuring = measured is None or self._labels_dirty
        self._labels_dirty = False
        # a refit is short and starts at every click: the dock's status line shows it, not an activity bar
        self._start(lambda token: refresh_job(measured, image, labels, table, classes, settings, where=where,
                                              previous=previous, existing=existing, fit=fit, version=version,
                                              token=token),
                    lambda r: self._on_refresh(r, where, table), "measuring objects…" if measuring
                    else "classifying…", bar=measuring)

    def _on_refresh(self, r: Refresh, where: tuple[int, ...], table: dict) -> None:
        remeasured = r.measured is not self.measured
        self.measured, self.measured_where = r.measured, where
        if remeasured and r.update is None:
            self._prepare_class_layer()
        if r.table is not None:
            self._maps.clear()
            self._version += 1
            self.state.settle(r.table)
            for note in r.notes:
                show_info(f"{TITLE}: {note}")
            if self.state.table != r.table:  # clicks made meanwhile: fit them too
                self._click_timer.start()
        else:
            self.state.settle(None)
            self._show_markers()
        n = len(r.measured.features.ids)
        if r.update is not None:
            self._show(r.update)
            self.state.status.idle(f"{n} objects classified from {len(r.table or table)} clicks", done=True)
            if r.update.version == self._version:
                self._assess_timer.start()
        else:
            reason = self.state.ready() if self.state.kind == "fast" else "click objects of each class, then Train"
            self.state.status.idle(f"{n} objects measured" + (f"; {reason}" if reason else ""), done=True)

    def _previous(self, where: tuple[int, ...]) -> np.ndarray | None:
        if where in self._maps:
            return self._maps[where]
        if where and () in self._maps:
            return self._maps[()][where]
        return None

    def _class_layer(self, classes):
        """The class layer of the chosen labels, coloured by ``classes``, with the dock's keys and clicks;
        and whether it is new."""
        layer, new = ensure_class_layer(self.viewer, self.labels_layer(), classes, self._coloured)
        self._coloured = tuple(classes)
        if not any(lay is layer for lay in self._attached):
            self._attach(layer)
        return layer, new

    def _prepare_class_layer(self) -> None:
        """Make the class and click layers (and the outlines) once the objects are measured, not at the first
        click (making a layer holds napari for a frame or more)."""
        if self.labels_layer() is not None:
            self._class_layer(self.state.classes)
            self._show_markers()

    def _show(self, u: Update) -> None:
        """Show a classification: the class layer where it changed, the Labels layer's features, the counts."""
        labels = self.labels_layer()
        if labels is None:
            return
        self.update, self.model = u, u.model
        layer, new = self._class_layer(u.model.classes)
        region = tuple(slice(0, n) for n in u.class_map.shape) if new else u.changed
        if u.where:
            self._maps.pop((), None)
        else:
            self._maps.clear()
        self._maps[u.where] = u.class_map
        self.writer.write(layer, u.where, u.class_map, region)
        write_features(labels, u.features)
        self.state.show_counts(u.counts())
        self.hover.forget()  # the object under the cursor is explained again, by this classification

    def assess(self) -> None:
        """Score the fast classifier on held-out clicks (a cross-validation), beside any other job."""
        if self.state.kind != "fast" or self.measured is None or self.update is None or self.state.ready():
            return
        if self._assessing is not None and not self._assessing.finished:
            self._assess_timer.start()
            return
        version = self._version
        if self._assessed == version:
            return
        measured, table, classes = self.measured, dict(self.state.table), self.state.classes
        settings = self.state.fit_settings()

        def done(assessment) -> None:
            if version == self._version:
                self.assessment, self._assessed = assessment, version
                self.state.show_assessment(assessment, len(table))

        self._assessing = self.track(start_job(lambda token: assess_job(measured, table, classes, settings, token),
                                               title=f"{TITLE}: held-out score", on_result=done, bar=False))

    # -- the deep classifier ---------------------------------------------------------------------------
    def train(self) -> None:
        """Fast: refit now. Deep: fine-tune on the clicks with live curves, then classify every object."""
        if self.state.kind == "fast":
            self.refresh(explicit=True)
            return
        if self.handle is not None:
            show_info(f"{TITLE}: a job is running; wait for it, or Cancel it")
            return
        try:
            image, labels, where = self._frames()
            self.state.check_ready()
            args = self.state.train_args()
            if self.measured is None or not self.measured.matches(labels):
                self._queued["train"] = self.train  # the labels changed: carry the clicks over first
                self.refresh()
                return
        except UserError as exc:
            self._error(exc)
            return
        table, classes = self.state.snapshot(), self.state.classes
        previous, existing = self._previous(where), self.labels_layer().features
        self.state.remember()
        self.form.plot.clear()
        self._start(lambda token: deep_job(image, labels, table, classes, args, where=where, previous=previous,
                                           existing=existing, token=token),
                    self._on_trained, f"training '{args['name']}'…", long=True, on_event=self._on_train_event,
                    title=f"Train {args['name']}")

    def _on_train_event(self, ev) -> None:
        if isinstance(ev, Progress):
            self.state.status.progress(ev)
        elif isinstance(ev, Metrics) and (Metric.TRAIN_LOSS in ev.values or Metric.VAL_LOSS in ev.values):
            self.form.plot.add(ev.step, ev.values)

    def _on_trained(self, outcome) -> None:
        result, update = outcome
        if update is None:
            self.state.status.idle("stopped before the first training step: nothing was trained or saved")
            return
        self._show(update)
        self.assessment = result.model.assessment
        self.state.show_assessment(self.assessment, len(self.state.table))
        where = f"; saved as '{Path(result.folder).name}' in the model store" if result.folder else ""
        self.state.status.idle(f"trained ({result.stopped.value}){where}", done=True)

    # -- why and what next -------------------------------------------------------------------------------
    def why(self, label: int | None = None) -> None:
        """Explain object ``label`` (default: the one under the cursor, else the last clicked)."""
        try:
            if self.model is None or self.measured is None:
                raise UserError("there is no classification to explain yet",
                                "label objects of every class (or Train, or Classify) first")
            if label is None:
                label = self._guard_position() or self.last_label
            if not label:
                raise UserError("there is no object under the cursor", "point at an object, or click one, and ask "
                                "again")
            if not np.isin(label, self.measured.features.ids):
                raise UserError(f"object {label} is not one of the measured objects", "explain an object of the "
                                "chosen Labels layer (at the time point clicked)")
        except UserError as exc:
            self._error(exc)
            return
        if not self._when_idle("why", lambda: self.why(label)):
            return
        model, measured, where = self.model, self.measured, self.measured_where
        self._start(lambda token: why_job(model, measured, int(label), token),
                    lambda why: self._on_why(why, where, isinstance(model, DeepClassifier)),
                    f"explaining object {label}…")

    def _guard_position(self) -> int:
        try:
            return self.object_at(self.viewer.cursor.position)[0]
        except (UserError, IndexError, ValueError):
            return 0

    def _on_why(self, why: Why, where: tuple[int, ...], deep: bool) -> None:
        prediction = self._measured_prediction()
        if prediction is not None and why.probability != why.probability:  # Grad-CAM gives no probability
            row = int(np.searchsorted(prediction.ids, why.label))
            why = replace(why, probability=float(prediction.probability[row]))
        self.why_result = why
        show_why(self.viewer, self.labels_layer(), why, where, deep)
        self.form.show_why(why)
        self.state.status.idle(f"object {why.label}: {why.class_name}", done=True)

    def _measured_prediction(self):
        """The prediction of the measured objects (the time point clicked), or None."""
        if self.update is None or self.measured is None:
            return None
        prediction = self.update.predictions.get(self.measured_where[0] if self.measured_where else None)
        if prediction is None or not np.array_equal(prediction.ids, self.measured.features.ids):
            return None
        return prediction

    def suggest(self) -> np.ndarray:
        """Mark the objects the classifier is least sure of (not yet clicked): label those next."""
        prediction = self._measured_prediction()
        if prediction is None:
            self._error(UserError("there is no classification to ask yet", "label objects of every class first "
                                  "(or Classify)"))
            return np.zeros(0, np.int64)
        self._suggested = prediction.suggest(self.state.suggest, exclude=self.state.table)
        self._show_suggested()
        self.state.status.idle(f"{len(self._suggested)} objects to label next are ringed in yellow")
        return self._suggested

    def _show_suggested(self) -> None:
        labels, f = self.labels_layer(), self.measured.features
        coords = self._coords(f.centroids[f.rows(self._suggested)] if len(self._suggested) else
                              np.zeros((0, f.ndim)))
        show_points(self.viewer, suggest_layer_name(labels.name), labels, coords, symbol="ring",
                    size=self._marker_size() * 3, face_color="yellow", border_width=0)

    # -- export ----------------------------------------------------------------------------------------------
    def export_csv(self, path: str | Path) -> Path | None:
        """Write every object's class and probability (``label,class,probability``) to ``path``."""
        if self.update is None:
            self._error(UserError("there is no classification to export yet", "classify the objects first"))
            return None
        out = self._guard(write_csv, path, self.update.table())
        if out is not None:
            show_info(f"{TITLE}: classes written to {out}")
        return out

    def export_clicks(self, path: str | Path) -> Path | None:
        """Write the clicks (``label,class``: a training table the command line reads) to ``path``."""
        out = self._guard(write_class_csv, path, self.state.table)
        if out is not None:
            show_info(f"{TITLE}: {len(self.state.table)} clicks written to {out}")
        return out
