"""Keep the last loaded models, so re-runs and previews start at once."""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import torch

from napari_dlmicro.core.models.base import Segmenter
from napari_dlmicro.core.models.loader import load_segmenter

_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple, Segmenter] = OrderedDict()
KEEP = 2


def _stamp(ref: str) -> float:
    p = Path(ref).expanduser()
    try:
        return max(f.stat().st_mtime for f in ([p] + list(p.iterdir()) if p.is_dir() else [p])) if p.exists() else 0.0
    except OSError:
        return 0.0


def get_segmenter(ref: str | Path, device: torch.device, trust_code: bool = False) -> Segmenter:
    """A loaded model for ``ref`` on ``device``, reused while its files are unchanged.

    ``trust_code`` lets a bioimage.io package run its own Python code (see :func:`.loader.load_model`).
    """
    key = (str(ref), str(device), _stamp(str(ref)), bool(trust_code))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    model = load_segmenter(ref, device, trust_code=trust_code)
    with _LOCK:
        _CACHE[key] = model
        while len(_CACHE) > KEEP:
            _CACHE.popitem(last=False)
    return model


def clear() -> None:
    """Forget every cached model (frees memory)."""
    with _LOCK:
        _CACHE.clear()
