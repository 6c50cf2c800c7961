"""Settings remembered between sessions: one JSON file, one section per dock."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import platformdirs


def settings_file() -> Path:
    """``settings.json`` in the user's config folder (``DLMICRO_CONFIG`` overrides the folder)."""
    env = os.environ.get("DLMICRO_CONFIG")
    if env:
        return Path(env) / "settings.json"
    return Path(platformdirs.user_config_dir("napari-dlmicro")) / "settings.json"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(settings_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def load_settings(section: str) -> dict[str, Any]:
    """The saved settings of ``section`` (empty if none or unreadable)."""
    value = _read().get(section, {})
    return dict(value) if isinstance(value, dict) else {}


def save_settings(section: str, values: dict[str, Any]) -> None:
    """Store ``values`` under ``section``; failures to write are ignored (settings are a convenience)."""
    data = _read()
    data[section] = values
    path = settings_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)
    except OSError:
        pass
