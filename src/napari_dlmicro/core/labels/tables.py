"""Measurement tables on disk: CSV always, Parquet beside it when pyarrow is installed."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.labels.measure import write_csv

try:  # optional: Parquet tables when pyarrow is there
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover - pyarrow is a dependency, but a table is still written without it
    pa = pq = None


def write_table(csv_path: str | os.PathLike, table: Mapping[str, Sequence]) -> list[Path]:
    """Write ``table`` as CSV at ``csv_path`` and, with pyarrow, as ``.parquet`` beside it; the paths written."""
    csv_path = Path(csv_path)
    written = [write_csv(csv_path, table)]
    if pq is not None:
        parquet = csv_path.with_suffix(".parquet")
        with atomic_output(parquet) as tmp:
            pq.write_table(pa.table({k: np.asarray(v) for k, v in table.items()}), str(tmp))
        written.append(parquet)
    return written


def concat_tables(tables: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several tables with the same columns, one after another (no tables: an empty label column)."""
    tables = [t for t in tables if t and len(next(iter(t.values()))) >= 0]
    if not tables:
        return {"label": np.zeros(0, np.int64)}
    columns = list(tables[0])
    return {c: np.concatenate([np.asarray(t[c]) for t in tables if c in t]) for c in columns}
