"""Cellpose weights: where the pretrained ones live, and checking any file safely.

Every file is opened with ``torch.load(weights_only=True)`` before cellpose
sees it, so a pickle that needs full unpickling is refused, and an incomplete
state dict is refused instead of running with random weights.
"""
from __future__ import annotations

import contextlib
import http.client
import importlib
import os
import pickle
import ssl
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.runtime.llvm import avoid_triton_crash

_MODEL_URL = "https://huggingface.co/mouseland/cellpose-sam/resolve/main/"


def import_cellpose() -> None:
    """Import cellpose, guarding against a crash between two copies of LLVM (see :mod:`...runtime.llvm`)."""
    cellpose_module("models")


def cellpose_module(name: str) -> ModuleType:
    """``cellpose.<name>``, imported on first use: cellpose is heavy (torchvision, the ViT, seconds), and
    must come after the LLVM guard."""
    if "cellpose.models" not in sys.modules:
        avoid_triton_crash()
    return importlib.import_module(f"cellpose.{name}")


# --------------------------------------------------------------------------- loading


def pretrained_names() -> tuple[str, ...]:
    """The Cellpose-SAM names in cellpose's own catalogue (``cpsam``, ...)."""
    cp_models = cellpose_module("models")
    names = getattr(cp_models, "MODEL_NAMES", ["cpsam"])
    return tuple(n for n in names if n.startswith("cpsam"))


def pretrained_location(name: str) -> tuple[str, Path]:
    """The URL cellpose downloads ``name`` from and the file it caches it as.

    Worked out without importing cellpose (seconds of start-up in a dock) unless
    it is imported already; cellpose reads the same variable at import.
    """
    cp_models = sys.modules.get("cellpose.models")
    if cp_models is not None:
        return getattr(cp_models, "_MODEL_URL", _MODEL_URL) + name, Path(cp_models.MODEL_DIR) / name
    folder = os.environ.get("CELLPOSE_LOCAL_MODELS_PATH") or Path.home() / ".cellpose" / "models"
    return _MODEL_URL + name, Path(folder) / name


@contextlib.contextmanager
def _keep_ssl_verification() -> Iterator[None]:
    # cellpose's downloader switches off certificate checks for the whole
    # process; put them back once it is done.
    saved = ssl._create_default_https_context
    try:
        yield
    finally:
        ssl._create_default_https_context = saved


def _cached_pretrained(name: str) -> Path:
    """The cached file of a pretrained model, downloaded by cellpose if missing."""
    cp_models = cellpose_module("models")
    url, target = pretrained_location(name)
    if target.is_file():
        return target
    try:
        with _keep_ssl_verification():
            return Path(cp_models.cache_model_path(name))
    except (OSError, http.client.HTTPException) as exc:
        raise UserError(
            f"could not download the Cellpose model '{name}' ({exc})",
            f"on a machine with internet, download {url} and save it, named '{name}', "
            f"in the folder {target.parent} (or set CELLPOSE_LOCAL_MODELS_PATH to the "
            "folder holding it before starting)",
        ) from exc


def locate_weights(model: str | Path) -> tuple[Path, str]:
    """The weights file for a catalogue name or a path, and a display name."""
    if isinstance(model, str) and model in pretrained_names():
        return _cached_pretrained(model), f"cellpose:{model}"
    path = Path(model).expanduser()
    if not path.exists():
        names = ", ".join(pretrained_names())
        raise UserError(
            f"'{model}' is neither a Cellpose-SAM model name nor an existing file",
            f"use one of {names}, or pick a Cellpose 4 weights file",
        )
    if not path.is_file():
        raise UserError(f"'{path}' is a folder, not a Cellpose weights file", "pick the weights file inside it")
    return path, path.name


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    """Open a weights file as tensors only: nothing in it can run code."""
    if not zipfile.is_zipfile(path):
        raise _not_weights(path, "not in torch.save's zip format")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise UserError(
                f"'{path.name}' holds Python objects that only full unpickling could load, "
                "and unpickling a file can run any code hidden in it, so it was not opened",
                "use a Cellpose 4 model saved as a plain state dict (cellpose's training "
                "saves those), or re-save it from a trusted session with "
                "torch.save(model.net.state_dict(), path)",
            ) from exc
        raise _not_weights(path, exc) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise _not_weights(path, exc) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"'{path.name}' is a PyTorch file but not a model's state dict", "pick a Cellpose 4 weights file")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _not_weights(path: Path, exc: BaseException | str) -> UserError:
    return UserError(
        f"'{path.name}' could not be read as PyTorch weights ({exc})",
        "pick a Cellpose 4 weights file saved with torch.save; a file saved in torch's "
        "old format must be re-saved with a current torch",
    )


def _expected_weights() -> dict[str, torch.Size]:
    """Names and shapes of Cellpose-SAM's trained weights (built on the meta device: no memory)."""
    with torch.device("meta"):
        net = cellpose_module("vit").CPSAM()
    return {name: p.shape for name, p in net.named_parameters() if p.requires_grad}


def check_weights_file(path: Path) -> None:
    """Refuse a file that is unsafe, not Cellpose 4, or not a complete Cellpose-SAM model."""
    state = _read_state_dict(path)
    if "W2" not in state:
        raise UserError(
            f"'{path.name}' is not a Cellpose 4 model (Cellpose 3 and older models do not work with Cellpose-SAM)",
            "use 'cpsam' or a model fine-tuned with cellpose 4",
        )
    if "encoder.cls_token" in state:
        raise UserError(f"'{path.name}' is a Cellpose-DINO model; only Cellpose-SAM models are supported", "use 'cpsam'")
    expected = _expected_weights()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k]]
    if missing or wrong:
        bad = missing or wrong
        raise UserError(
            f"'{path.name}' is not a complete Cellpose-SAM model: {len(missing)} weights missing, "
            f"{len(wrong)} of the wrong shape (e.g. {bad[0]})",
            "pick the full file that cellpose saved",
        )
