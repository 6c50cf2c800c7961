"""TIFF, OME-TIFF and ImageJ-TIFF in and out, with axes and pixel sizes.

Axes use the letters ``T C Z Y X S``, in the order the file stores them:

- ``S`` is kept only for RGB(A) samples: the last axis, of size 3 or 4. Any
  other samples axis becomes ``C``.
- Axes that tifffile cannot name (``Q``, ``I`` for a plain ImageJ stack, ...)
  take the first free letter of ``Z``, ``T``, ``C``, starting from the axis
  nearest ``YX``; a spectral axis (``E``) prefers ``C``.

Pixel sizes are held in micrometres (``unit == "µm"``) whenever the file's
unit is a known length. A size in a unit that is not a length is kept as
stored, with that unit. Resolution tags in inches are print settings (72 dpi),
not pixel sizes, and are ignored, as are tags without a unit.

Every writer here writes to a hidden file in the target folder and renames it
over the target at the end, so a reader never sees half a file.
"""
from __future__ import annotations

import logging
import os
import secrets
import struct
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from .errors import UserError

AXES = "TCZYXS"
SPATIAL = "ZYX"
UM = "µm"
TIFF_SUFFIXES = (".tif", ".tiff")

_UM_PER_UNIT = {
    "µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
    "micrometer": 1.0, "micrometre": 1.0, "micrometers": 1.0, "micrometres": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "m": 1e6, "meter": 1e6, "metre": 1e6,
    "pm": 1e-6, "picometer": 1e-6, "picometre": 1e-6,
    "å": 1e-4, "angstrom": 1e-4, "ångström": 1e-4,
}
_NOT_A_UNIT = {"", "pixel", "pixels", "px", "none"}
_RESUNIT_UM = {
    tifffile.RESUNIT.CENTIMETER: 1e4,
    tifffile.RESUNIT.MILLIMETER: 1e3,
    tifffile.RESUNIT.MICROMETER: 1.0,
}
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_DAMAGE_WORDS = ("invalid page offset", "invalid value offset", "corrupt", "truncat")


@dataclass
class ImageData:
    """An image read from disk, with what napari needs to show it to scale.

    ``scale`` maps spatial axis letters (``Z``, ``Y``, ``X``) to pixel sizes in
    ``unit``; axes missing from it have no known size.
    """

    data: np.ndarray
    axes: str
    scale: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    channel_names: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def rgb(self) -> bool:
        """True when the last axis holds RGB(A) samples."""
        return self.axes.endswith("S")


# ---------------------------------------------------------------- units


def um_per(unit: str | None) -> float | None:
    """How many micrometres one ``unit`` is, or None if it is not a known length."""
    if unit is None:
        return None
    key = str(unit).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ").lower()
    return _UM_PER_UNIT.get(key)


def _in_micrometres(sizes: dict[str, float], unit: str | None) -> tuple[dict[str, float], str | None]:
    if not sizes:
        return {}, None
    factor = um_per(unit)
    if factor is not None:
        return {axis: value * factor for axis, value in sizes.items()}, UM
    if unit is None or str(unit).strip().lower() in _NOT_A_UNIT:
        return {}, None
    return dict(sizes), str(unit)


# ---------------------------------------------------------------- axes


def tiff_axes(axes: str, shape: Sequence[int]) -> str:
    """Rename tifffile axis letters to ``T C Z Y X S`` (see the module notes)."""
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes:
        raise UserError(
            f"the image has axes {axes!r} and no Y and X plane",
            "save it as a 2D or higher image with Y and X axes",
        )
    out = list(axes)
    for i, (letter, size) in enumerate(zip(axes, shape)):
        if letter == "S" and not (i == len(axes) - 1 and size in (3, 4)):
            out[i] = "?"
        elif letter not in AXES:
            out[i] = "?"
    for i in reversed(range(len(out))):
        if out[i] != "?":
            continue
        order = "CZT" if axes[i] in "ES" else "ZTC"
        free = [letter for letter in order if letter not in out]
        if not free:
            raise UserError(
                f"the image has more axes than T, C, Z, Y, X ({axes!r})",
                "save it with at most one time, channel and Z axis",
            )
        out[i] = free[0]
    return "".join(out)


def layer_axes(axes: str) -> str:
    """The axes a napari layer has: all but the channel and RGB-sample axes."""
    return "".join(a for a in axes if a not in "CS")


def layer_scale(axes: str, scale: Mapping[str, float]) -> tuple[float, ...]:
    """The napari ``scale`` tuple for the non-channel axes (1.0 where unknown)."""
    return tuple(float(scale.get(axis, 1.0)) for axis in layer_axes(axes))


def split_channels(
    data: np.ndarray, axes: str, channel_names: Sequence[str] = ()
) -> list[tuple[str, np.ndarray]]:
    """One ``(channel name, array)`` pair per channel, with the ``C`` axis removed.

    Without a ``C`` axis the whole array is the single channel. Channels
    without a name are called ``ch0``, ``ch1``, ...
    """
    if "C" not in axes:
        return [(channel_names[0] if channel_names else "ch0", data)]
    c = axes.index("C")
    names = list(channel_names)[: data.shape[c]]
    names += [f"ch{i}" for i in range(len(names), data.shape[c])]
    return [(names[i], np.take(data, i, axis=c)) for i in range(data.shape[c])]


# ---------------------------------------------------------------- reading


def image_name(path: str | os.PathLike) -> str:
    """The file name without ``.tif``/``.tiff`` and without ``.ome``."""
    stem = Path(path).stem
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def read_image(path: str | os.PathLike) -> ImageData:
    """Read the first image series of a TIFF, OME-TIFF or ImageJ-TIFF file.

    Raises :class:`UserError` for a missing, empty, non-TIFF, truncated or
    otherwise unreadable file.
    """
    path = Path(path)
    _check_file(path)
    with _tifffile_warnings() as warnings:
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                raw_axes, shape = series.axes, series.shape
                _check_complete(path, series, warnings)
                data = series.asarray()
                sizes, unit, names = _metadata(tif, series)
        except UserError:
            raise
        except tifffile.TiffFileError as err:
            if "not a TIFF" in str(err):
                raise UserError(
                    f"{path.name} is not a TIFF file",
                    "open a .tif/.tiff file, or convert the image to TIFF (Fiji: File > Save As > Tiff)",
                ) from err
            raise _corrupt(path, err) from err
        except (ValueError, OSError, IndexError, KeyError, EOFError, struct.error) as err:
            raise _corrupt(path, err) from err
    _check_complete(path, None, warnings)
    axes = tiff_axes(raw_axes, shape)
    scale, unit = _in_micrometres({a: v for a, v in sizes.items() if a in axes}, unit)
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    names = names if len(names) == n_channels else []
    return ImageData(data, axes, scale, unit, names, image_name(path))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"there is no file at {path}", "check the path and the file name")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image file", "pick a .tif file inside it")
    if path.stat().st_size == 0:
        raise UserError(f"{path.name} is empty (0 bytes)", "the file was not written completely: save or copy it again")


def _corrupt(path: Path, err: BaseException | str) -> UserError:
    return UserError(
        f"{path.name} is truncated or corrupt and cannot be read ({err})",
        "copy or export the file again; if it came from a transfer, check that it finished",
    )


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR or any(k in message.lower() for k in _DAMAGE_WORDS):
            self.messages.append(message)


@contextmanager
def _tifffile_warnings() -> Iterator[list[str]]:
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _check_complete(path: Path, series, warnings: list[str]) -> None:
    """Raise if tifffile met damaged structures, or pixel data lie past the end of the file."""
    if warnings:
        raise _corrupt(path, warnings[0].split("> ")[-1].strip().rstrip("')\""))
    if series is None:
        return
    size = path.stat().st_size
    if series.dataoffset is not None:
        end = series.dataoffset + series.nbytes
    else:
        end = max(
            (o + n for page in series.pages if page is not None
             for o, n in zip(page.dataoffsets, page.databytecounts)),
            default=0,
        )
    if end > size:
        raise _corrupt(path, f"the pixel data need {end} bytes, the file has {size}")


def _metadata(tif: tifffile.TiffFile, series) -> tuple[dict[str, float], str | None, list[str]]:
    if tif.is_ome and tif.ome_metadata:
        found = _ome_metadata(tif.ome_metadata, 0)
        if found is not None:
            return found
    if tif.is_imagej and tif.imagej_metadata is not None:
        return _imagej_metadata(tif.imagej_metadata, series.keyframe)
    return _resolution_metadata(series.keyframe)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_metadata(xml: str, index: int) -> tuple[dict[str, float], str | None, list[str]] | None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    images = [e for e in root if _local(e.tag) == "Image"]
    if index >= len(images):
        return None
    pixels = next((e for e in images[index] if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        return None
    sizes: dict[str, float] = {}
    for axis in SPATIAL:
        value = pixels.get(f"PhysicalSize{axis}")
        if value is None:
            continue
        factor = um_per(pixels.get(f"PhysicalSize{axis}Unit", UM))
        if factor is None:
            continue
        sizes[axis] = float(value) * factor
    names = [c.get("Name", "") for c in pixels if _local(c.tag) == "Channel"]
    names = names if all(names) else []
    return sizes, (UM if sizes else None), names


def _imagej_metadata(meta: dict, page) -> tuple[dict[str, float], str | None, list[str]]:
    sizes = _pixel_sizes_from_tags(page)
    if "spacing" in meta:
        sizes["Z"] = float(meta["spacing"])
    unit = meta.get("unit")
    return sizes, (str(unit) if unit is not None else None), []


def _resolution_metadata(page) -> tuple[dict[str, float], str | None, list[str]]:
    tag = page.tags.get("ResolutionUnit")
    factor = _RESUNIT_UM.get(tag.value) if tag is not None else None
    if factor is None:
        return {}, None, []
    sizes = {axis: value * factor for axis, value in _pixel_sizes_from_tags(page).items()}
    return sizes, (UM if sizes else None), []


def _pixel_sizes_from_tags(page) -> dict[str, float]:
    sizes = {}
    for axis in "XY":
        tag = page.tags.get(f"{axis}Resolution")
        if tag is None:
            continue
        num, den = tag.value
        if num > 0 and den > 0:
            sizes[axis] = den / num
    return sizes


# ---------------------------------------------------------------- writing


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    On any error the temporary file is removed and ``path`` is left as it
    was. Missing parent folders are created. File-system errors become a
    :class:`UserError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except OSError as err:
        raise _unwritable(path, err) from err
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _unwritable(path, err) from err
        raise


def _unwritable(path: Path, err: OSError) -> UserError:
    return UserError(
        f"could not write {path} ({err.strerror or err})",
        "check that the folder is writable and the disk has free space",
    )


def label_dtype(max_label: int) -> np.dtype:
    """``uint16`` when every label fits, else ``uint32``."""
    return np.dtype(np.uint16 if max_label <= np.iinfo(np.uint16).max else np.uint32)


def _as_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.uint16)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating) or not np.all(np.mod(labels, 1) == 0):
            raise UserError(
                f"labels must be whole numbers, got {labels.dtype} data",
                "pass a labels layer or an integer array (0 = background)",
            )
    if labels.size == 0:
        raise UserError("the labels array is empty", "pass labels with at least one pixel")
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise UserError(
            f"labels contain the negative value {low}", "use 0 for background and positive ids for objects"
        )
    if high > np.iinfo(np.uint32).max:
        raise UserError(f"the largest label {high} does not fit in 32 bits", "relabel the objects sequentially")
    return labels.astype(label_dtype(high), copy=False)


def default_axes(ndim: int) -> str:
    """``YX``, ``ZYX``, ``TZYX`` for 2, 3 and 4 dimensions."""
    if not 2 <= ndim <= 4:
        raise UserError(
            f"cannot guess the axes of a {ndim}D array",
            "pass axes explicitly, e.g. 'TCZYX'",
        )
    return "TZYX"[-ndim:]


def _check_write_axes(axes: str | None, ndim: int) -> str:
    axes = default_axes(ndim) if axes is None else axes.upper()
    valid = len(axes) == ndim == len(set(axes)) and set(axes) <= set(AXES) and {"Y", "X"} <= set(axes)
    if not valid:
        raise UserError(
            f"axes {axes!r} do not describe a {ndim}D array",
            f"give {ndim} different letters from {AXES}, including Y and X",
        )
    return axes


def _sizes_um(scale, axes: str, unit: str | None) -> dict[str, float]:
    if scale is None:
        return {}
    if isinstance(scale, Mapping):
        sizes = {str(k).upper(): float(v) for k, v in scale.items()}
    else:
        values = [float(v) for v in scale]
        named = axes if len(values) == len(axes) else layer_axes(axes)
        if len(values) != len(named):
            raise UserError(
                f"{len(values)} scale values do not match the axes {axes!r}",
                "give one pixel size per axis (or per non-channel axis)",
            )
        sizes = dict(zip(named, values))
    factor = um_per(unit)
    if factor is None:
        return {}
    sizes = {a: v * factor for a, v in sizes.items() if a in SPATIAL and a in axes}
    for axis, value in sizes.items():
        if not np.isfinite(value) or value <= 0:
            raise UserError(f"the pixel size along {axis} is {value}", "pixel sizes must be positive numbers")
    return sizes


def write_labels(
    path: str | os.PathLike,
    labels,
    scale: Mapping[str, float] | Sequence[float] | None = None,
    axes: str | None = None,
    unit: str | None = UM,
) -> Path:
    """Write integer labels to a TIFF, atomically; returns the path written.

    Labels are stored as ``uint16`` when the largest fits, else ``uint32``.
    ``axes`` defaults to ``YX``/``ZYX``/``TZYX`` by dimension; ``scale`` is a
    mapping from axis letter to pixel size, or one size per (non-channel)
    axis, in ``unit``. Files named ``*.ome.tif(f)``, and ``uint32`` labels
    (which ImageJ cannot store), are written as OME-TIFF; others as
    ImageJ-TIFF, which Fiji opens with the right calibration.
    """
    data = _as_labels(labels)
    axes = _check_write_axes(axes, data.ndim)
    return _write(Path(path), data, axes, _sizes_um(scale, axes, unit), [])


def write_image(
    path: str | os.PathLike,
    image,
    scale: Mapping[str, float] | Sequence[float] | None = None,
    axes: str | None = None,
    unit: str | None = UM,
    channel_names: Sequence[str] = (),
) -> Path:
    """Write an image as float32 TIFF, atomically; returns the path written.

    ``axes``, ``scale`` and ``unit`` work as in :func:`write_labels`.
    ``*.ome.tif(f)`` names give OME-TIFF (with the channel names), others
    ImageJ-TIFF.
    """
    data = np.asarray(image)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool) or np.iscomplexobj(data):
        raise UserError(f"cannot save {data.dtype} data as an image", "pass a real-valued numeric array")
    axes = _check_write_axes(axes, data.ndim)
    sizes = _sizes_um(scale, axes, unit)
    return _write(Path(path), data.astype(np.float32, copy=False), axes, sizes, list(channel_names))


def is_ome_name(path: str | os.PathLike) -> bool:
    """True for ``*.ome.tif`` and ``*.ome.tiff``."""
    return Path(path).name.lower().endswith((".ome.tif", ".ome.tiff"))


def _write(path: Path, data: np.ndarray, axes: str, sizes: dict[str, float], channel_names: list[str]) -> Path:
    order = [axes.index(a) for a in "TZCYXS" if a in axes]
    data = np.ascontiguousarray(np.transpose(data, order))
    axes = "".join(axes[i] for i in order)
    as_ome = is_ome_name(path) or data.dtype.type not in _IMAGEJ_DTYPES
    kwargs = _ome_kwargs(axes, sizes, channel_names) if as_ome else _imagej_kwargs(axes, sizes)
    if "S" in axes:
        kwargs["photometric"] = "rgb"
    elif data.ndim >= 2:
        kwargs["photometric"] = "minisblack"
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, data, **kwargs)
    return path


def _resolution(sizes: dict[str, float], per_unit_um: float) -> dict:
    if "X" not in sizes and "Y" not in sizes:
        return {}
    x = sizes.get("X", sizes.get("Y"))
    y = sizes.get("Y", x)
    return {"resolution": (per_unit_um / x, per_unit_um / y)}


def _imagej_kwargs(axes: str, sizes: dict[str, float]) -> dict:
    metadata: dict = {"axes": axes}
    if sizes:
        metadata["unit"] = "micron"
    if "Z" in sizes:
        metadata["spacing"] = sizes["Z"]
    return {"imagej": True, "metadata": metadata, **_resolution(sizes, 1.0)}


def _ome_kwargs(axes: str, sizes: dict[str, float], channel_names: list[str]) -> dict:
    metadata: dict = {"axes": axes}
    for axis, value in sizes.items():
        metadata[f"PhysicalSize{axis}"] = value
        metadata[f"PhysicalSize{axis}Unit"] = UM
    if channel_names:
        metadata["Channel"] = {"Name": channel_names}
    kwargs = {"ome": True, "metadata": metadata, **_resolution(sizes, 1e4)}
    if "resolution" in kwargs:
        kwargs["resolutionunit"] = "CENTIMETER"
    return kwargs
