"""Training-set folders: (image, mask) pairs on disk, written so nothing is ever lost.

Our layout is StarDist's: ``images/NAME.tif`` and ``masks/NAME.tif``, plus
``meta/NAME.json`` with provenance (source file, crop, date, object count).
Each file is written to a temporary name and renamed into place, a pair is
only listed once both files exist, and an existing name is never overwritten:
a new pair gets a fresh name. Two foreign layouts load too: StarDist's
(``images/`` + ``masks/``) and Cellpose's (``NAME.tif`` next to ``NAME_masks.tif``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.io.files import image_name, pair_by_name
from napari_dlmicro.core.io.tiff_read import read_image
from napari_dlmicro.core.labels.edit import fill_holes, relabel_sequential

TIFF = (".tif", ".tiff")
CELLPOSE_SUFFIX = "_masks"


@dataclass
class Pair:
    """One training example: image (spatial..., [C]), its label mask, and where it came from."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_objects(self) -> int:
        return len(np.unique(self.mask[self.mask > 0]))


@dataclass(frozen=True)
class Summary:
    """What a training-set folder holds."""

    folder: str
    layout: str  # "ours" | "stardist" | "cellpose" | "empty"
    n_images: int
    n_objects: int
    shapes: tuple[tuple[int, ...], ...]

    def __str__(self) -> str:
        return f"{self.n_images} images, {self.n_objects} objects ({self.layout} layout)"


def _tiffs(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF and not p.name.startswith(".")
    )


def _safe_name(name: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("._")
    return keep or "annotation"


def free_name(folder: Path, wanted: str) -> str:
    """``wanted``, or ``wanted_2``, ``wanted_3``... whichever is not taken in the set."""
    folder = Path(folder)
    base = _safe_name(wanted)
    name, k = base, 1
    while any((folder / sub / f"{name}{ext}").exists() for sub in ("images", "masks") for ext in TIFF):
        k += 1
        name = f"{base}_{k}"
    return name


def check_pair(image: np.ndarray, mask: np.ndarray, name: str = "the annotation") -> None:
    """Refuse pairs that cannot train anything: mismatched shapes, an empty or non-integer mask."""
    image, mask = np.asarray(image), np.asarray(mask)
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise UserError(f"the mask of {name} holds {mask.dtype} values, not labels",
                        "use a Labels layer or integer TIFF")
    spatial = image.shape[: mask.ndim]
    if spatial != mask.shape:
        raise UserError(f"image of shape {image.shape} and mask of shape {mask.shape} differ ({name})",
                        "each mask must match its image pixel for pixel")
    if image.ndim > mask.ndim + 1:
        raise UserError(f"image of {name} has {image.ndim} axes for a {mask.ndim}D mask",
                        "give one image per mask with at most one channel axis at the end")
    if not mask.any():
        raise UserError(f"the mask of {name} is empty (no objects)", "annotate at least one object first")
    if mask.min() < 0:
        raise UserError(f"the mask of {name} has negative labels", "use 0 for background and positive ids")


def add_pair(folder: str | Path, image: np.ndarray, mask: np.ndarray, name: str = "annotation",
             source: str = "", crop: Sequence[slice] | None = None, extra: dict | None = None) -> str:
    """Save one (image, mask) pair into the training set ``folder``; returns the name used.

    The image keeps its pixel type; the mask is stored as uint16/uint32.
    Never overwrites: a taken ``name`` becomes ``name_2`` and so on.
    """
    folder = Path(folder)
    image, mask = np.asarray(image), np.asarray(mask)
    check_pair(image, mask, name)
    for sub in ("images", "masks", "meta"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    name = free_name(folder, name)
    mask_dtype = np.uint16 if mask.max() <= np.iinfo(np.uint16).max else np.uint32
    meta = {
        "name": name,
        "source": str(source),
        "crop": [[s.start, s.stop] for s in crop] if crop is not None else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "shape": list(mask.shape),
        "n_objects": len(np.unique(mask[mask > 0])),
        **(extra or {}),
    }
    # image first, then mask: a pair is listed only once its mask exists
    with atomic_output(folder / "images" / f"{name}.tif") as tmp:
        tifffile.imwrite(tmp, image)
    with atomic_output(folder / "meta" / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    with atomic_output(folder / "masks" / f"{name}.tif") as tmp:
        tifffile.imwrite(tmp, mask.astype(mask_dtype))
    return name


def detect_layout(folder: str | Path) -> str:
    """``ours``/``stardist`` (images/ + masks/), ``cellpose`` (*_masks.tif), or ``empty``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"training set folder '{folder}' does not exist", "pick a folder, or add an annotation first")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return "ours" if (folder / "meta").is_dir() else "stardist"
    if any(image_name(p).endswith(CELLPOSE_SUFFIX) for p in _tiffs(folder)):
        return "cellpose"
    return "empty"


def pair_files(folder: str | Path, masks: str | Path | None = None) -> list[tuple[Path, Path]]:
    """The (image, mask) files of a training set, or of an images folder and a masks folder."""
    folder = Path(folder)
    if masks is not None:
        for f in (folder, Path(masks)):
            if not Path(f).is_dir():
                raise UserError(f"folder '{f}' does not exist", "check the path")
        return pair_by_name(_tiffs(folder), _tiffs(Path(masks)))
    layout = detect_layout(folder)
    if layout in ("ours", "stardist"):
        return pair_by_name(_tiffs(folder / "images"), _tiffs(folder / "masks"))
    if layout == "cellpose":
        files = _tiffs(folder)
        mask_files = [p for p in files if image_name(p).endswith(CELLPOSE_SUFFIX)]
        images = [p for p in files
                  if not image_name(p).endswith(CELLPOSE_SUFFIX) and not image_name(p).endswith("_flows")]
        return pair_by_name(images, mask_files)
    raise UserError(f"'{folder.name}' holds no training pairs",
                    "use a folder with images/ and masks/, or Cellpose-style NAME.tif + NAME_masks.tif files")


def _read_meta(folder: Path, name: str) -> dict:
    path = folder / "meta" / f"{name}.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


def load_pairs(folder: str | Path, masks: str | Path | None = None) -> list[Pair]:
    """Read every pair of a training set (any supported layout), checked."""
    out = []
    for im, m in pair_files(folder, masks):
        image = np.asarray(read_image(im).data)
        mask = np.asarray(read_image(m).data)
        if image.shape[: mask.ndim] != mask.shape and image.shape[1:] == mask.shape:
            image = np.moveaxis(image, 0, -1)  # a channel-first file: channels last
        check_pair(image, mask, im.name)
        out.append(Pair(image_name(im), image, mask, _read_meta(Path(folder), image_name(im)) if masks is None else {}))
    return out


def summarize(folder: str | Path) -> Summary:
    """Counts of images and objects in a training set (reads only the masks)."""
    folder = Path(folder)
    layout = detect_layout(folder)
    if layout == "empty":
        return Summary(str(folder), layout, 0, 0, ())
    n_obj, shapes = 0, []
    for _, m in pair_files(folder):
        mask = tifffile.imread(m)
        n_obj += len(np.unique(mask[mask > 0]))
        shapes.append(tuple(mask.shape))
    return Summary(str(folder), layout, len(shapes), n_obj, tuple(shapes))


def spatial_ndim(pairs: Sequence[Pair]) -> int:
    """The one dimensionality (2 or 3) of all masks; mixed sets are refused."""
    dims = sorted({p.mask.ndim for p in pairs})
    if not dims:
        raise UserError("the training set is empty", "add annotations first")
    if len(dims) > 1:
        names = {d: next(p.name for p in pairs if p.mask.ndim == d) for d in dims}
        raise UserError(f"the training set mixes {' and '.join(f'{d}D ({names[d]})' for d in dims)} masks",
                        "train 2D and 3D models on separate training sets")
    if dims[0] not in (2, 3):
        raise UserError(f"masks are {dims[0]}D", "use 2D (YX) or 3D (ZYX) masks")
    return dims[0]


def clean_mask(mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Fill holes and relabel 1..N; returns the mask and a note for each fix."""
    notes = []
    ids = np.unique(mask[mask > 0])
    filled = fill_holes(mask)
    if np.count_nonzero(filled) != np.count_nonzero(mask):
        notes.append("holes inside objects were filled")
    if ids.size and (ids[0] != 1 or ids[-1] != ids.size):
        notes.append("object ids were renumbered 1..N")
    return relabel_sequential(filled), notes


def split_validation(pairs: Sequence[Pair], fraction: float, seed: int = 0,
                     min_objects: int = 10) -> tuple[list[Pair], list[Pair]]:
    """Hold out about ``fraction`` of the data for validation.

    With several images whole images are held out; a single image is cut in
    two along its longer axis. Too few objects for a meaningful split is a
    :class:`UserError`.
    """
    if not 0.0 < fraction < 0.9:
        raise UserError(f"validation fraction {fraction} is outside (0, 0.9)", "use 0.1 to 0.3")
    total = sum(p.n_objects for p in pairs)
    if total < min_objects:
        raise UserError(f"the training set has only {total} objects, too few to hold some out for validation",
                        f"annotate at least {min_objects} objects")
    if len(pairs) >= 3:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pairs))
        n_val = max(1, int(round(fraction * len(pairs))))
        val = [pairs[i] for i in order[:n_val]]
        train = [pairs[i] for i in order[n_val:]]
        if sum(p.n_objects for p in val) >= 1:
            return train, val
    train, val = [], []
    for p in pairs:
        axis = int(np.argmax(p.mask.shape[-2:])) + p.mask.ndim - 2
        cut = int(round(p.mask.shape[axis] * (1 - fraction)))
        a = tuple(slice(None) if d != axis else slice(0, cut) for d in range(p.mask.ndim))
        b = tuple(slice(None) if d != axis else slice(cut, None) for d in range(p.mask.ndim))
        train.append(Pair(p.name, p.image[a], p.mask[a], p.meta))
        val.append(Pair(p.name + "-val", p.image[b], p.mask[b], p.meta))
    if sum(p.n_objects for p in val) < 1:
        raise UserError("the part held out for validation holds no objects",
                        "annotate objects across the whole image, or raise the validation fraction")
    return train, val


def prepare_pairs(pairs: Sequence[Pair]) -> tuple[list[Pair], list[str]]:
    """Masks cleaned (holes filled, ids 1..N), each fix reported once per pair."""
    out, notes = [], []
    spatial_ndim(pairs)
    for p in pairs:
        mask, fixes = clean_mask(p.mask)
        notes += [f"{p.name}: {f}" for f in fixes]
        out.append(Pair(p.name, p.image, mask, p.meta))
    return out, notes


def provenance(pairs: Sequence[Pair]) -> dict:
    """What a model was trained on, for its config: pair names and source files."""
    return {"data": {"pairs": [p.name for p in pairs],
                     "sources": sorted({str(p.meta.get("source", "")) for p in pairs} - {""})}}


def training_split(pairs: Sequence[Pair], fraction: float, seed: int, objects: bool = True
                   ) -> tuple[list[Pair], list[Pair], list[str]]:
    """Training and validation pairs of a segmentation training set, and notes on what was fixed.

    With ``objects`` (instance masks) holes are filled and ids renumbered, and
    at least ten objects are needed; class maps are left as they are.
    """
    if not pairs:
        raise UserError("the training set is empty", "add annotations to it first")
    notes: list[str] = []
    if objects:
        pairs, notes = prepare_pairs(pairs)
    spatial_ndim(pairs)
    train, val = split_validation(pairs, fraction, seed, min_objects=10 if objects else 1)
    return train, val, notes


def check_dimensionality(folder: str, ndim: int) -> None:
    """Refuse a 3D annotation for a training set of 2D ones (and the reverse): models train on one kind."""
    try:
        dims = {len(shape) for shape in summarize(folder).shapes} if Path(folder).is_dir() else set()
    except UserError:  # nothing readable there yet: any annotation may start the set
        return
    if dims and ndim not in dims:
        held = " and ".join(f"{d}D" for d in sorted(dims))
        raise UserError(f"the training set '{Path(folder).name}' holds {held} annotations (for a {held} model) and "
                        f"this one is {ndim}D", f"add {ndim}D annotations to a separate training set folder")
