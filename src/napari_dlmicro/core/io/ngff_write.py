"""Writing OME-Zarr outputs block by block: NGFF label images and images, marked complete only when they are.

A blockwise job first *creates* its output (:func:`create_output`): the
group and one empty array per pyramid level, with the chunking it will write
in and a ``dlmicro`` attribute that says ``running``. Workers then fill level 0
chunk by chunk and the lower levels from it. Only :func:`finish_output`
writes the NGFF ``multiscales`` (and, for labels, ``image-label``) metadata
through ``ome-zarr`` and turns the state to ``complete``; until then no NGFF
reader sees an image there, and ``--resume`` knows the store is unfinished.

Labels go into a new store (``<stem>_labels.ome.zarr``, a label image at its
root) or into the input image's own ``labels/`` group; either way they carry
the input's pixel sizes, offset and spatial chunking, and the input's NGFF
version (0.4 on Zarr v2, 0.5 on Zarr v3).
"""
from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import add_metadata, get_metadata, write_label_metadata, write_multiscales_metadata

from napari_dlmicro.core.errors import UserError

STATE_KEY = "dlmicro"
RUNNING, COMPLETE = "running", "complete"
MIN_LEVEL_SIZE = 256  # a pyramid stops once Y and X are both at most this
_AXIS_TYPE = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


@dataclass
class OutputSpec:
    """Where an output lives and what it holds; JSON-safe, so workers and resumed runs rebuild it."""

    store: str  # the Zarr store's folder
    group: str  # the image group inside it ("" for the store's root; "labels/<name>" inside an input)
    axes: str  # letters, e.g. "YX", "TZYX" (labels have no C)
    level_shapes: list[list[int]]
    chunks: list[int]
    dtype: str
    kind: str  # "labels" or "image"
    name: str
    zarr_format: int = 2
    scale: dict[str, float] = field(default_factory=dict)
    translation: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    channel_names: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        """The image group's folder."""
        return Path(self.store) / self.group if self.group else Path(self.store)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.level_shapes[0])

    def array(self, level: int = 0, mode: str = "r+") -> zarr.Array:
        """Pyramid level ``level`` (``mode='r'`` to read only)."""
        store = zarr.storage.LocalStore(str(self.path), read_only=mode == "r")
        return zarr.open_array(store, path=str(level), mode=mode)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutputSpec:
        return cls(**data)


def pyramid_shapes(shape: tuple[int, ...], axes: str, like: list[tuple[int, ...]] | None = None) -> list[list[int]]:
    """Level shapes: halving Y and X until both are at most :data:`MIN_LEVEL_SIZE`.

    ``like`` (the input's level shapes on the same axes) is followed instead
    when it halves the same way, so labels line up with the image's levels.
    """
    if like and tuple(like[0]) == tuple(shape):
        return [list(s) for s in like]
    out = [list(shape)]
    yx = [axes.index("Y"), axes.index("X")]
    while max(out[-1][i] for i in yx) > MIN_LEVEL_SIZE:
        nxt = list(out[-1])
        for i in yx:
            nxt[i] = max(1, -(-nxt[i] // 2))
        out.append(nxt)
    return out


def create_output(spec: OutputSpec, resume: bool = False) -> OutputSpec:
    """Create the output's group and empty level arrays (state ``running``).

    An existing output is refused unless ``resume``; a resumed one must have
    the same shape, chunks and type, and a complete one is refused too (there
    is nothing to resume).
    """
    path = spec.path
    if path.exists():
        state = output_state(path)
        if not resume:
            raise UserError(f"the output {path} already exists" + (" (complete)" if state == COMPLETE else ""),
                            "remove it, choose another output folder, or continue an unfinished run with --resume")
        if state is None:
            raise UserError(f"{path} exists but was not written by a napari-dlmicro run",
                            "remove it or choose another output folder")
        try:
            existing = OutputSpec.from_json(_read_attrs(path)[STATE_KEY]["spec"])
        except (KeyError, TypeError):
            raise UserError(f"{path} has no run description to resume from", "remove it and start again") from None
        if (existing.level_shapes, existing.chunks, existing.dtype, existing.axes) != (
                spec.level_shapes, spec.chunks, spec.dtype, spec.axes):
            raise UserError(f"{path} was started for another image or block size "
                            f"(shape {existing.shape}, chunks {tuple(existing.chunks)})",
                            "resume with the same input and --block, or remove the output and start again")
        return existing
    try:
        if spec.group:
            _ensure_parent_groups(spec)
        root = zarr.open_group(str(path), mode="w-", zarr_format=spec.zarr_format)
        for level, shape in enumerate(spec.level_shapes):
            chunks = tuple(min(c, n) for c, n in zip(spec.chunks, shape))
            encoding = {"chunk_key_encoding": {"name": "v2", "separator": "/"}} if spec.zarr_format == 2 else {}
            root.create_array(str(level), shape=tuple(shape), chunks=chunks, dtype=spec.dtype, fill_value=0,
                              **encoding)
        root.attrs[STATE_KEY] = {"state": RUNNING, "spec": spec.to_json()}
    except OSError as exc:
        raise UserError(f"could not create {path} ({exc.strerror or exc})",
                        "check that the folder is writable and the disk has free space") from None
    return spec


def _ensure_parent_groups(spec: OutputSpec) -> None:
    """The groups above the output (an input's ``labels``, a plate's row and column), made if missing."""
    parts = Path(spec.group).parent.parts
    for i in range(1, len(parts) + 1):
        folder = Path(spec.store).joinpath(*parts[:i])
        if not is_group(folder):
            with contextlib.suppress(FileExistsError, zarr.errors.ContainsGroupError):  # made by another worker
                zarr.open_group(str(folder), mode="a", zarr_format=spec.zarr_format)


def is_group(path: Path) -> bool:
    """True where Zarr group metadata (v2 or v3) is written."""
    return (path / "zarr.json").is_file() or (path / ".zgroup").is_file()


def output_state(path: str | Path) -> str | None:
    """``running`` or ``complete`` for our outputs; None for anything else."""
    try:
        state = _read_attrs(Path(path)).get(STATE_KEY, {})
    except (OSError, ValueError):
        return None
    return state.get("state") if isinstance(state, dict) else None


def _read_attrs(path: Path) -> dict[str, Any]:
    if (path / "zarr.json").is_file():
        return json.loads((path / "zarr.json").read_text()).get("attributes", {})
    if (path / ".zattrs").is_file():
        return json.loads((path / ".zattrs").read_text())
    return {}


def finish_output(spec: OutputSpec, extra: dict[str, Any] | None = None) -> Path:
    """Write the NGFF metadata through ome-zarr and mark the output ``complete``; returns its folder."""
    fmt = FormatV04() if spec.zarr_format == 2 else FormatV05()
    group = zarr.open_group(str(spec.path), mode="r+", zarr_format=spec.zarr_format)
    axes = [{"name": a.lower(), "type": _AXIS_TYPE[a], **({"unit": _ngff_unit(spec.unit)} if
                                                          a in "ZYX" and _ngff_unit(spec.unit) else {})}
            for a in spec.axes]
    datasets = []
    base = spec.level_shapes[0]
    for level, shape in enumerate(spec.level_shapes):
        scale = [float(spec.scale.get(a, 1.0)) * (base[i] / shape[i]) if a in "ZYX" else 1.0
                 for i, a in enumerate(spec.axes)]
        shift = [float(spec.translation.get(a, 0.0)) + (0.5 * (scale[i] - spec.scale.get(a, 1.0))
                                                         if a in "ZYX" else 0.0) for i, a in enumerate(spec.axes)]
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": scale}, {"type": "translation", "translation": shift}]})
    write_multiscales_metadata(group, datasets, fmt=fmt, axes=axes, name=spec.name)
    if spec.kind == "labels":
        if spec.group:  # inside an input image: the labels group lists it
            labels = zarr.open_group(str(Path(spec.store) / Path(spec.group).parent), mode="r+")
            names = get_metadata(labels).get("labels", [])
            if spec.name in names:
                add_metadata(labels, {"labels": [n for n in names if n != spec.name]}, fmt=fmt)
            write_label_metadata(labels, Path(spec.group).name, fmt=fmt)
        else:
            add_metadata(group, {"image-label": {"version": fmt.version}}, fmt=fmt)
    elif spec.channel_names:
        add_metadata(group, {"omero": {"channels": [{"label": n, "active": True} for n in spec.channel_names]}},
                     fmt=fmt)
    group = zarr.open_group(str(spec.path), mode="r+")  # reopened: the label metadata came through another handle
    group.attrs[STATE_KEY] = {"state": COMPLETE, "spec": spec.to_json(), **(extra or {})}
    return spec.path


def _ngff_unit(unit: str | None) -> str | None:
    return {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter"}.get(unit or "")


def remove_output(spec: OutputSpec) -> None:
    """Delete an unfinished output (a run that failed before writing anything worth keeping)."""
    if spec.path.exists() and output_state(spec.path) == RUNNING:
        shutil.rmtree(spec.path, ignore_errors=True)


def downsample(block: np.ndarray, factors: tuple[int, ...], labels: bool) -> np.ndarray:
    """One pyramid step: every ``factors``-th pixel for labels (ids stay ids), the block mean for images."""
    if labels:
        return block[tuple(slice(0, None, f) for f in factors)]
    pads = [(0, (-n) % f) for n, f in zip(block.shape, factors)]
    x = np.pad(block.astype(np.float32), pads, mode="edge")
    shape = []
    for n, f in zip(x.shape, factors):
        shape += [n // f, f]
    return x.reshape(shape).mean(axis=tuple(range(1, 2 * len(factors), 2))).astype(block.dtype)
