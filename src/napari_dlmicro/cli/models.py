"""``napari-dlmicro models``: the pretrained catalogue and the stored models, with where each lives."""
from __future__ import annotations

import argparse

from napari_dlmicro.core.models.paths import cache_dir, store_dir
from napari_dlmicro.core.models.store import list_models


def add_parser(sub) -> None:
    """Register the subcommand."""
    p = sub.add_parser("models", help="list pretrained and stored models, with where each lives")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per model: name, kind, state, location."""
    models = list_models()
    width = max(len(m.name) for m in models)
    for m in models:
        state = "ready" if m.available else "downloads on first use"
        print(f"{m.name:<{width}}  {m.kind:<9} {state:<23} {m.location}")
    print(f"\npretrained cache: {cache_dir()}\nstored models:    {store_dir()}")
    return 0
