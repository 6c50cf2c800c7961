"""Our model folder on disk: ``config.json`` plus ``weights.safetensors``.

Weights are safetensors: plain tensors, nothing executable, so a folder a user
picks can never run code. Folders are written to a temporary sibling and
renamed into place, so a crash never leaves half a model.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import write_folder_atomically

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
FORMAT_VERSION = 1


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder, or a clear error."""
    folder = Path(folder)
    path = folder / CONFIG
    if not folder.is_dir():
        raise UserError(f"model folder '{folder}' does not exist", "pick a folder that holds config.json and the weights")
    if not path.is_file():
        raise UserError(f"'{folder.name}' has no config.json, so it is not a model folder",
                        "pick the folder that holds config.json and the weights file")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config.json in '{folder.name}' is not valid JSON ({exc})", "restore it from the saved model") from None


def load_safetensors(net: nn.Module, folder: Path) -> None:
    """Load ``weights.safetensors`` into ``net``; mismatches are a clear error."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        others = sorted(p.name for p in Path(folder).iterdir() if p.suffix in {".pt", ".pth", ".ckpt", ".pkl"})
        hint = f" (found {', '.join(others)}: pickled weights are never loaded)" if others else ""
        raise UserError(f"'{Path(folder).name}' has no {WEIGHTS}{hint}", "pick a folder saved by napari-dlmicro")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{WEIGHTS} in '{Path(folder).name}' is damaged ({exc})", "re-save or re-train the model") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "shapes differ"
        raise UserError(f"the weights in '{Path(folder).name}' do not match its config.json ({first})",
                        "the folder mixes files of two models; re-save it") from None


def save_model_folder(folder: Path, config: dict[str, Any], net: nn.Module) -> Path:
    """Write ``config`` and ``net``'s weights atomically into ``folder``."""
    folder = Path(folder)
    config = {"format_version": FORMAT_VERSION, "saved": time.strftime("%Y-%m-%dT%H:%M:%S"), **config}

    def write(tmp: Path) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=_jsonable))

    write_folder_atomically(folder, write)
    return folder


def _jsonable(obj: Any):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
