"""Where models live on this machine: the store of trained models and the cache of downloaded ones."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def _user_dir(kind: str) -> Path:
    if kind == "data":
        return Path(platformdirs.user_data_dir("napari-dlmicro"))
    return Path(platformdirs.user_cache_dir("napari-dlmicro"))


def store_dir() -> Path:
    """Folder of models trained or saved by the plugin (``DLMICRO_MODELS`` overrides)."""
    env = os.environ.get("DLMICRO_MODELS")
    return Path(env) if env else _user_dir("data") / "models"


def cache_dir() -> Path:
    """Folder of downloaded pretrained models (``DLMICRO_CACHE`` overrides)."""
    env = os.environ.get("DLMICRO_CACHE")
    return Path(env) if env else _user_dir("cache") / "pretrained"


def engines_dir() -> Path:
    """Folder of networks exported for ONNX Runtime / OpenVINO and of the engine measurements.

    ``DLMICRO_ENGINES`` overrides; under ``DLMICRO_CACHE`` it is a sibling of the pretrained models.
    """
    env = os.environ.get("DLMICRO_ENGINES")
    if env:
        return Path(env)
    cache = os.environ.get("DLMICRO_CACHE")
    return Path(cache) / "engines" if cache else _user_dir("cache") / "engines"


def bioimageio_dir() -> Path:
    """Folder of bioimage.io packages unpacked or downloaded once (``DLMICRO_CACHE`` moves it too)."""
    cache = os.environ.get("DLMICRO_CACHE")
    return Path(cache) / "bioimageio" if cache else _user_dir("cache") / "bioimageio"
