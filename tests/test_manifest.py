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


def test_every_contribution_names_a_defined_command():
    """Widgets, readers, writers and samples point at commands the manifest defines."""
    contrib = _manifest().contributions
    defined = {c.id for c in contrib.commands}
    used = [w.command for w in contrib.widgets] + [r.command for r in contrib.readers]
    used += [w.command for w in contrib.writers] + [s.command for s in contrib.sample_data]
    assert set(used) <= defined, sorted(set(used) - defined)
    assert {w.display_name for w in contrib.widgets} >= {"Segmentation", "Annotation", "Training"}
