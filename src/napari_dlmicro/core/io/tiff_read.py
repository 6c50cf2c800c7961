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

Writing lives in :mod:`.tiff_write` and metadata parsing in :mod:`.tiff_metadata`.
"""
from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.axes import FILE_AXES as AXES
from napari_dlmicro.core.io.files import image_name
from napari_dlmicro.core.io.tiff_metadata import _in_micrometres, _metadata, layer_axes

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
        if letter == "S" and not (i == len(axes) - 1 and size in (3, 4)) or letter not in AXES:
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
