"""The npe2 manifest validates, ships inside the package, and every command imports."""
from __future__ import annotations

import importlib
from pathlib import Path

import yaml

import napari_dlmicro


def _manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_distribution("napari-dlmicro")


def test_manifest_is_found_and_valid():
    manifest = _manifest()
    assert manifest.name == "napari-dlmicro"
    root = Path(__file__).parents[1] / "napari.yaml"
    packaged = Path(napari_dlmicro.__file__).parent / "napari.yaml"
    assert yaml.safe_load(root.read_text()) == yaml.safe_load(packaged.read_text())


def test_every_command_imports():
    for command in _manifest().contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), command.id
