"""Where a lazy image's pixels come from, in a form that travels to dask workers.

A source is a small picklable description (a Zarr array's store and path, a
TIFF file's series and level, or an in-memory array) that opens its data on
first use in each process and reads one region at a time. Blockwise jobs send
sources, never pixels, to their workers.

Zarr reads check that every chunk of the region is stored: Zarr itself reads a
missing chunk as the fill value, so a store copied half-way would otherwise
give silently blank blocks. Stores written without their empty chunks on
purpose pass ``allow_missing=True``. A chunk that cannot be decoded is named.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from napari_dlmicro.core.errors import UserError

Index = tuple[slice | int, ...]


class SourceError(UserError):
    """A region could not be read: a chunk missing or damaged, a file gone."""


class _OpenedArray:
    """Shape, type and chunks of a source that opens a Zarr array (once per process)."""

    def open(self) -> zarr.Array:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.open().shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.open().dtype)

    @property
    def chunks(self) -> tuple[int, ...]:
        return tuple(self.open().chunks)


@dataclass(frozen=True)
class ZarrSource(_OpenedArray):
    """One array of a local Zarr store (v2 or v3), ``root/path``."""

    root: str
    path: str
    allow_missing: bool = False

    def open(self) -> zarr.Array:
        """The array, opened read-only once per process."""
        return _opened(("zarr", self.root, self.path), lambda: zarr.open_array(
            zarr.storage.LocalStore(self.root, read_only=True), path=self.path, mode="r"))

    def read(self, index: Index) -> np.ndarray:
        """The pixels at ``index`` (slices or ints, one per axis)."""
        array = self.open()
        if not self.allow_missing:
            self.check_chunks(index)
        try:
            return np.asarray(array[index])
        except (ValueError, RuntimeError, OSError, TypeError) as exc:
            raise SourceError(f"a chunk of {self.describe()} around {_where(index)} cannot be decoded ({exc})",
                              "the store is damaged: copy or convert it again") from None

    def check_chunks(self, index: Index) -> None:
        """Raise :class:`SourceError` naming the first chunk (or shard) of ``index`` that the store lacks."""
        array = self.open()
        folder = Path(self.root) / self.path
        stored = getattr(array, "shards", None) or array.chunks  # a sharded array stores one file per shard
        ranges = []
        for s, n, c in zip(_as_slices(index, array.shape), array.shape, stored):
            start, stop = s.start, min(s.stop, n)
            ranges.append(range(start // c, max(start // c + 1, math.ceil(stop / c))))
        for coords in product(*ranges):
            key = array.metadata.encode_chunk_key(coords)
            if not (folder / key).exists():
                raise SourceError(f"chunk {key} of {self.describe()} is missing (around {_where(index)})",
                                  "the store is incomplete: copy it again; if it leaves empty chunks out on "
                                  "purpose, allow missing chunks (CLI: --fill-missing)")

    def describe(self) -> str:
        return f"{Path(self.root).name}/{self.path}"


@dataclass(frozen=True)
class TiffSource(_OpenedArray):
    """One series (and pyramid level) of a TIFF file, read through tifffile's Zarr store."""

    path: str
    series: int = 0
    level: int = 0

    def open(self) -> zarr.Array:
        def make() -> zarr.Array:
            store = tifffile.imread(self.path, aszarr=True, series=self.series, level=self.level)
            return zarr.open_array(store, mode="r")
        return _opened(("tiff", self.path, self.series, self.level), make)

    def read(self, index: Index) -> np.ndarray:
        try:
            return np.asarray(self.open()[index])
        except (ValueError, RuntimeError, OSError, KeyError, tifffile.TiffFileError) as exc:
            raise SourceError(f"{Path(self.path).name} cannot be read around {_where(index)} ({exc})",
                              "the file is damaged: copy or export it again") from None

    def describe(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class MemorySource:
    """An array already in memory (a napari layer's numpy data, a test image)."""

    array: Any = field(repr=False)
    name: str = "image"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def chunks(self) -> tuple[int, ...]:
        chunks = getattr(self.array, "chunksize", None) or getattr(self.array, "chunks", None)
        if isinstance(chunks, tuple) and all(isinstance(c, int) for c in chunks):
            return chunks
        return tuple(self.array.shape)

    def read(self, index: Index) -> np.ndarray:
        return np.asarray(self.array[index])

    def describe(self) -> str:
        return self.name


Source = ZarrSource | TiffSource | MemorySource

_OPEN: dict[tuple, Any] = {}
_OPEN_LOCK = threading.Lock()


def _opened(key: tuple, make) -> Any:
    """One opened array per key and process (reopened after a fork)."""
    key = key + (os.getpid(),)
    with _OPEN_LOCK:
        if key not in _OPEN:
            _OPEN[key] = make()
        return _OPEN[key]


def forget_opened() -> None:
    """Close what this process opened (a store rewritten in place, tests)."""
    with _OPEN_LOCK:
        _OPEN.clear()


def _as_slices(index: Index, shape: tuple[int, ...]) -> list[slice]:
    out = []
    for i, n in zip(index, shape):
        if isinstance(i, slice):
            start, stop, _ = i.indices(n)
            out.append(slice(start, stop))
        else:
            out.append(slice(int(i), int(i) + 1))
    out += [slice(0, n) for n in shape[len(out):]]
    return out


def _where(index: Index) -> str:
    parts = [f"{i.start or 0}:{i.stop}" if isinstance(i, slice) else str(i) for i in index]
    return "[" + ", ".join(parts) + "]"
