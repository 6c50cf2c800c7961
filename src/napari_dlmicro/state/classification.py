"""The Classification dock's state: classes, the clicked training table, the classifier and its settings.

Qt-free and evented (psygnal): the dock binds its fields to this and turns
clicks into calls of it. What a click means (assign the current class, or
unlabel an object clicked again with its own class), whether the fast
classifier can train yet, which settings each classifier shows, and what
the training and saving jobs are given, are decided here and tested without
a viewer. The jobs themselves are in :mod:`.classify_jobs`.

While a job works on a snapshot of the table (:meth:`ClassificationState.snapshot`),
clicks go on being recorded; when the job hands back a table carried over
to new labels, :meth:`ClassificationState.settle` replays the clicks made
meanwhile on top of it, so no click is lost to a job that was running.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psygnal import evented

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.classifier.assessment import Assessment
from napari_dlmicro.core.models.classifier.classes import PALETTE, ClassSpec, classes_from_dicts, make_classes
from napari_dlmicro.core.models.classifier.settings import CLASSIFIERS
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.registry import get_kind
from napari_dlmicro.core.preferences import load_settings, save_settings
from napari_dlmicro.core.settings import Setting
from napari_dlmicro.state.job_status import JobStatus
from napari_dlmicro.state.training import gui_threads
from napari_dlmicro.state.values import SettingValues

SECTION = "classification"
DEFAULT_CLASSES = make_classes(["class 1", "class 2"])
MAX_KEYS = 9  # keys 1-9 pick the first nine classes
# The settings each classifier reads (the rest belong to the other one)
KIND_SETTINGS = {
    "fast": ("trees", "val_fraction", "seed"),
    "deep": ("minutes", "epochs", "lr", "batch", "val_fraction", "seed", "crop", "context", "augment", "pretrained"),
}


def classifier_settings(kind: str) -> tuple[Setting, ...]:
    """The declared training settings the ``kind`` classifier (fast or deep) reads, in declared order."""
    if kind not in CLASSIFIERS:
        raise UserError(f"unknown classifier {kind!r}", f"use one of {', '.join(CLASSIFIERS)}")
    return tuple(s for s in get_kind("classifier").train_settings if s.name in KIND_SETTINGS[kind])


def not_ready(table: Mapping[int, str], names: Sequence[str]) -> str | None:
    """Why a classifier cannot be trained on ``table`` with classes ``names`` yet (None: it can)."""
    if len(names) < 2:
        return "define a second class and label some of its objects"
    used = set(table.values())
    missing = [n for n in names if n not in used]
    if missing:
        return f"label at least one object of '{missing[0]}'"
    return None


def model_name(name: str) -> str:
    """``name`` checked as a folder name in the model store."""
    name = name.strip()
    if not name or Path(name).name != name or name.startswith("."):
        raise UserError(f"'{name}' cannot name a model in the store", "use a plain name without '/'")
    return name


def time_axis(axes: str | None, labels_ndim: int) -> bool:
    """True when the Labels layer's first axis is time: 4D labels, or 3D ones whose axes start with T."""
    spatial = (axes or "").upper().replace("C", "").replace("S", "")
    return labels_ndim == 4 or (labels_ndim == 3 and len(spatial) == 3 and spatial.startswith("T"))


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(n)) for n in shape)


def check_layers(image: str, image_shape: Sequence[int], labels: str, labels_shape: Sequence[int],
                 timed: bool) -> None:
    """Refuse a Labels layer that does not match the image pixel for pixel (channels first or last)."""
    image_shape, labels_shape = tuple(image_shape), tuple(labels_shape)
    frame_i = image_shape[1:] if timed else image_shape
    frame_l = labels_shape[1:] if timed else labels_shape
    fits = frame_i == frame_l or (len(frame_i) == len(frame_l) + 1
                                  and frame_l in (frame_i[:-1], frame_i[1:]))
    if timed and image_shape[:1] != labels_shape[:1]:
        fits = False
    if not fits:
        raise UserError(f"the Labels layer '{labels}' ({_shape_text(labels_shape)}) does not match the image "
                        f"'{image}' ({_shape_text(image_shape)})",
                        "pick the Labels layer segmented from this image, or segment it again")
    if len(frame_l) not in (2, 3):
        raise UserError(f"the Labels layer '{labels}' is {len(labels_shape)}D",
                        "classify 2D or 3D objects (a time axis first is understood)")


@evented
@dataclass
class ClassificationState:
    """Everything the Classification dock holds: layers, classes, clicks, classifier, results."""

    image: str = ""
    labels: str = ""
    classes: tuple[ClassSpec, ...] = DEFAULT_CLASSES
    current: int = 0  # index of the class a click assigns
    table: dict = field(default_factory=dict)  # {label id: class name}: the clicks, the training table
    frame: int | None = None  # the time point the clicks belong to (None: no time axis)
    kind: str = "fast"
    live: bool = True  # the fast classifier retrains as the user clicks
    hover: bool = False  # explain the object under the cursor once it rests there
    device: str = "auto"
    name: str = "my-classifier"
    suggest: int = 10
    model: str = ""  # the stored classifier "Classify" applies
    counts: str = ""
    accuracy: str = ""
    confusion: tuple = ()  # rows of held-out counts, classes in ``confusion_classes`` order
    confusion_classes: tuple = ()
    status: JobStatus = field(default_factory=JobStatus)
    values: SettingValues = field(default_factory=SettingValues)
    _all_values: dict = field(default_factory=dict, repr=False)  # every setting's value, both classifiers
    _journal: list | None = field(default=None, repr=False)  # clicks since the running job's snapshot

    def __post_init__(self) -> None:
        self.values.set_specs(classifier_settings(self.kind), self._all_values)

    # -- classes ----------------------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        """The class names, in order."""
        return tuple(c.name for c in self.classes)

    @property
    def current_class(self) -> ClassSpec:
        """The class a click assigns."""
        return self.classes[min(self.current, len(self.classes) - 1)]

    def add_class(self, name: str | None = None, colour: str | None = None) -> int:
        """Add a class (default name ``class N``, the next palette colour); returns its index."""
        names = list(self.class_names)
        n = len(names) + 1
        while name is None and f"class {n}" in names:
            n += 1
        name = f"class {n}" if name is None else name
        colour = colour or next((p for p in PALETTE if p not in {c.colour for c in self.classes}), None)
        self.classes = make_classes(names + [name], [c.colour for c in self.classes] + [colour])
        return len(self.classes) - 1

    def remove_class(self, index: int) -> None:
        """Remove a class without labelled objects (a class with clicks is refused: nothing clicked is lost)."""
        spec = self.classes[index]
        n = sum(1 for v in self.table.values() if v == spec.name)
        if n:
            raise UserError(f"the class '{spec.name}' has {n} labelled object(s)",
                            "unlabel them first (click them again with the class selected), or Clear the clicks")
        if len(self.classes) == 1:
            raise UserError("the last class cannot be removed", "rename it, or add another class first")
        self.classes = self.classes[:index] + self.classes[index + 1:]
        self.current = min(self.current, len(self.classes) - 1)

    def rename_class(self, index: int, name: str) -> None:
        """Rename a class; its labelled objects keep it under the new name."""
        old = self.classes[index].name
        names = list(self.class_names)
        names[index] = name
        self.classes = make_classes(names, [c.colour for c in self.classes])
        new = self.classes[index].name
        if new != old:
            self.table = {k: (new if v == old else v) for k, v in self.table.items()}

    def set_colour(self, index: int, colour: str) -> None:
        """Give a class another colour (``#rrggbb``)."""
        colours = [c.colour for c in self.classes]
        colours[index] = colour
        self.classes = make_classes(list(self.class_names), colours)

    def select(self, index: int) -> None:
        """Make class ``index`` (0-based) the one clicks assign."""
        if not 0 <= index < len(self.classes):
            raise UserError(f"there is no class {index + 1} (there are {len(self.classes)})",
                            "add a class, or press a key from 1 to the number of classes")
        self.current = index

    def adopt_classes(self, classes: Sequence[ClassSpec]) -> None:
        """Take a stored classifier's classes (in its order), keeping any own class that still has clicks."""
        own = [c for c in self.classes if c.name not in {k.name for k in classes}
               and c.name in set(self.table.values())]
        merged = list(classes) + own
        self.classes = make_classes([c.name for c in merged], [c.colour for c in merged])
        self.current = min(self.current, len(self.classes) - 1)

    # -- clicks ------------------------------------------------------------------------------------------
    def click(self, label: int, frame: int | None = None) -> str | None:
        """Label object ``label`` with the current class; returns the class, or None when nothing is labelled.

        Clicking an object again with its own class unlabels it; the
        background (0) labels nothing. With a time axis the clicks belong to
        one time point, and a click at another is refused.
        """
        label = int(label)
        if label <= 0:
            return None
        if self.table and frame != self.frame:
            raise UserError(f"the clicks so far are on time point {self.frame}, this object is on {frame}",
                            "label objects at that time point, or Clear the clicks to start on this one")
        name = self.current_class.name
        table = dict(self.table)
        if table.get(label) == name:
            del table[label]
            name = None
        else:
            table[label] = name
        self.frame = frame
        self.table = table
        if self._journal is not None:
            self._journal.append((label, name))
        return name

    def clear_clicks(self) -> int:
        """Forget every click; returns how many there were."""
        n = len(self.table)
        self.table = {}
        self.frame = None
        if self._journal is not None:
            self._journal.append((None, None))
        return n

    def clicked(self) -> dict[str, int]:
        """Labelled objects per class, in class order."""
        return {c: sum(1 for v in self.table.values() if v == c) for c in self.class_names}

    def ready(self) -> str | None:
        """Why the classifier cannot be trained yet (None: it can)."""
        return not_ready(self.table, self.class_names)

    def check_ready(self) -> None:
        """Refuse to train, saying what is missing: a second class, or a labelled object of some class."""
        if len(self.classes) < 2:
            raise UserError(f"only one class ('{self.classes[0].name}') is defined, and a classifier needs two",
                            "add a second class and label some of its objects")
        used = set(self.table.values())
        for name in self.class_names:
            if name not in used:
                raise UserError(f"the class '{name}' has no labelled objects",
                                f"select '{name}' and click some of its objects (or remove the class)")

    def snapshot(self) -> dict[int, str]:
        """The table as a job sees it; clicks from now on are also recorded for :meth:`settle`."""
        self._journal = []
        return dict(self.table)

    def settle(self, carried: Mapping[int, str] | None) -> None:
        """The job's table (carried over to new labels; None: unchanged) with the clicks made since replayed."""
        journal, self._journal = self._journal or [], None
        if carried is None:
            return
        table = dict(carried)
        for label, name in journal:
            if label is None:
                table = {}
            elif name is None:
                table.pop(label, None)
            else:
                table[label] = name
        self.table = table

    # -- the classifier ----------------------------------------------------------------------------------
    def choose_kind(self, kind: str) -> None:
        """Use the fast or the deep classifier; the settings both read keep their values."""
        specs = classifier_settings(kind)
        self._all_values.update(self.values.raw())
        self.kind = kind
        self.values.set_specs(specs, self._all_values)

    def fit_settings(self) -> dict[str, Any]:
        """The fast classifier's checked settings (trees, seed, val_fraction)."""
        if self.kind != "fast":
            by_name = {s.name: s for s in classifier_settings("fast")}
            merged = {**{n: s.default for n, s in by_name.items()}, **self._all_values}
            return {n: by_name[n].check(merged[n]) for n in by_name}
        return self.values.checked()

    def train_settings(self) -> dict[str, Any]:
        """Settings for :func:`...core.jobs.classify.train_classifier_job`, checked (an epoch budget
        switches the minutes off)."""
        values = {"classifier": self.kind, **self.values.checked()}
        if values.get("epochs") is not None:
            values["minutes"] = None
        return values

    def train_args(self) -> dict[str, Any]:
        """Keyword arguments of the deep training job besides the data: checked settings, name, store folder."""
        name = model_name(self.name)
        return {"settings": self.train_settings(), "name": name, "out": store_dir() / name, "device": self.device,
                "threads": gui_threads()}

    def save_folder(self) -> Path:
        """Where "Save" writes the classifier: the store folder of the checked name."""
        return store_dir() / model_name(self.name)

    # -- results -----------------------------------------------------------------------------------------
    def show_counts(self, counts: Mapping[str, int]) -> None:
        """The count line: objects per class, and how many of each were clicked."""
        clicked = self.clicked()
        total = sum(counts.values())
        parts = [f"{name} {n}" + (f" ({clicked[name]} clicked)" if clicked.get(name) else "")
                 for name, n in counts.items()]
        self.counts = f"{total} objects: " + ", ".join(parts)

    def show_assessment(self, assessment: Assessment | None, n_clicked: int = 0) -> None:
        """The held-out accuracy line and confusion matrix (None: too few clicks to hold any out)."""
        if assessment is None:
            self.accuracy = ("held-out accuracy: label two objects of each class at least" if n_clicked
                             else "")
            self.confusion, self.confusion_classes = (), ()
            return
        self.accuracy = assessment.summary()
        self.confusion_classes = tuple(assessment.classes)
        self.confusion = tuple(tuple(int(v) for v in row) for row in assessment.confusion)

    # -- remembered between sessions ---------------------------------------------------------------------
    def remember(self) -> None:
        """Save the classes and the form for the next session."""
        self._all_values.update(self.values.raw())
        save_settings(SECTION, {"classes": [c.to_dict() for c in self.classes], "kind": self.kind,
                                "values": dict(self._all_values), "live": self.live, "device": self.device,
                                "name": self.name, "suggest": self.suggest, "hover": self.hover})

    def restore(self) -> None:
        """Put back the last session's classes and form (a hand-edited file keeps the defaults)."""
        saved = load_settings(SECTION)
        try:
            self.classes = classes_from_dicts(saved.get("classes") or [c.to_dict() for c in DEFAULT_CLASSES])
        except UserError:
            self.classes = DEFAULT_CLASSES
        values = saved.get("values")
        self._all_values = dict(values) if isinstance(values, dict) else {}
        kind = saved.get("kind", self.kind)
        self.kind = kind if kind in CLASSIFIERS else "fast"
        self.values.set_specs(classifier_settings(self.kind), self._all_values)
        self.live = bool(saved.get("live", self.live))
        self.hover = bool(saved.get("hover", self.hover))
        self.device = str(saved.get("device", self.device))
        self.name = str(saved.get("name", self.name))
        with contextlib.suppress(TypeError, ValueError):
            self.suggest = max(1, int(saved.get("suggest", self.suggest)))
        self.current = 0
