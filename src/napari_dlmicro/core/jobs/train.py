"""The training job: any kind, from a folder or from data in memory, for the docks, the CLI and Python.

The kind comes from the registry, its settings are checked against the ranges
it declares (unknown names and values out of range are refused with a message
naming them), its data is read the way the kind learns (masks or class maps
for segmentation, targets for CARE, the images alone for Noise2Void, masks
and class tables for a classifier), and
its trainer runs on the one training loop. The result is a :class:`TrainResult`.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_dlmicro.core.data.training_sets import load_pairs
from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.files import pair_by_name, tiff_files
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.models.classifier.data import read_classifier_data
from napari_dlmicro.core.models.registry import TrainsOn, get_kind
from napari_dlmicro.core.models.restoration.train import RestorationData
from napari_dlmicro.core.models.store import notify_store_changed
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, run_to_end
from napari_dlmicro.core.runtime.threads import set_cpu_threads
from napari_dlmicro.core.training.result import TrainResult


def read_training_data(kind: str, images: str | Path, masks: str | Path | None = None,
                       targets: str | Path | None = None, axes: str | None = None,
                       classes: str | Path | None = None) -> Any:
    """What ``kind`` trains on, read from disk: training-set pairs, images (and CARE's targets), or a
    classifier's images, masks and class tables (``classes``: a folder of ``<stem>.csv`` with label,class)."""
    k = get_kind(kind)
    if k.trains_on is TrainsOn.CLASSES:
        if targets is not None:
            raise UserError(f"the {k.title.lower()} learns from masks and classes, not targets",
                            "give --masks DIR and --classes DIR")
        return read_classifier_data(images, masks, classes)
    if classes is not None:
        raise UserError(f"{k.title} does not learn from object classes", "train a classifier on --classes")
    if k.trains_on in (TrainsOn.MASKS, TrainsOn.CLASS_MAPS):
        if targets is not None:
            raise UserError(f"{k.title} learns from masks, not targets", "give --masks DIR (or a training-set folder)")
        return load_pairs(images, masks)
    if masks is not None:
        raise UserError(f"{k.title} learns from images, not masks",
                        "give --targets DIR for CARE, or only --images for Noise2Void")
    files = tiff_files([images])
    data = [read_image(f) for f in files]
    target_data = None
    if k.trains_on is TrainsOn.TARGETS:
        if not targets:
            raise UserError(f"{k.title} training needs target images",
                            "give the folder of target images, named like the inputs (--targets DIR)")
        by_file = {f: read_image(f) for f in tiff_files([targets])}
        pairs = pair_by_name(files, list(by_file), complete=True, names=("input", "target"))
        target_data = [by_file[t].data for _, t in pairs]
    axes_set = {d.axes for d in data}
    if axes is None and len(axes_set) > 1:
        raise UserError(f"the images have different axes ({', '.join(sorted(axes_set))})",
                        "train on images of one kind, or give --axes")
    return RestorationData([d.data for d in data], target_data, axes or data[0].axes.replace("S", "C"),
                           [f.name for f in files])


def train_job(kind: str, data: Any, settings: Mapping[str, Any] | None = None, *, out: str | Path | None = None,
              name: str | None = None, init: str | None = None, device: str = "auto", threads: int | None = None,
              preview: tuple[int, tuple[slice, ...]] | None = None, token: CancelToken = NEVER) -> Job:
    """Train ``kind`` on ``data`` (see :func:`read_training_data`) with ``settings`` (by setting name).

    ``threads`` caps torch's CPU threads for the run (a GUI leaves a core to
    its event loop). Returns a :class:`TrainResult`; a model saved into the
    model store is announced to every dock.
    """
    k = get_kind(kind)
    spec = k.training_settings(settings or {}, threads=threads, max_threads=threads, device=device)
    name = name or (Path(out).name if out is not None else kind)
    try:
        result: TrainResult = yield from k.trainer()(data, spec, token, device=device, name=name, save_to=out,
                                                      init=init, preview=preview)
    finally:
        if threads:
            set_cpu_threads()  # a thread limit ends with the job, even one that failed
    if result.folder is not None:
        notify_store_changed(result.folder)
    return result


def train_from_folders(kind: str, images: str | Path, masks: str | Path | None = None,
                       targets: str | Path | None = None, axes: str | None = None,
                       classes: str | Path | None = None, **kwargs: Any) -> TrainResult:
    """Headless: train ``kind`` on files (keyword arguments as :func:`train_job`)."""
    return run_to_end(train_job(kind, read_training_data(kind, images, masks, targets, axes, classes), **kwargs))
