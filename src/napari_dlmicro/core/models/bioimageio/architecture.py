"""The architecture source a package carries: one self-contained Python file that builds any of our networks.

It is assembled from the modules that define the networks (the shared U-Net,
StarDist's network, the semantic and restoration heads and :mod:`.entry`), so
there is one definition of each layer and the file can never drift from the
code that trained the weights. Imports of this package are dropped (what they
named is in the file itself); everything else it needs is numpy and torch.
"""
from __future__ import annotations

import ast
import inspect
from types import ModuleType

from napari_dlmicro.core.models.bioimageio import entry
from napari_dlmicro.core.models.restoration import network as restoration_network
from napari_dlmicro.core.models.semantic import network as semantic_network
from napari_dlmicro.core.models.stardist import network as stardist_network
from napari_dlmicro.core.nets import unet

CALLABLE = "build_network"
FILE_NAME = "network.py"
_OURS = "napari_dlmicro"
# (module, the top-level names taken from it; None: all of it)
_PARTS: tuple[tuple[ModuleType, tuple[str, ...] | None], ...] = (
    (unet, None),
    (stardist_network, None),
    (semantic_network, ("SemanticNet",)),
    (restoration_network, ("RestorationNet",)),
    (entry, None),
)
_HEADER = '''"""Networks of napari-dlmicro models in bioimage.io packages (PyTorch).

``{callable}(kind, config)`` builds the network that the package's
``pytorch_state_dict`` weights belong to. Assembled from napari-dlmicro's own
modules; it needs only numpy and torch.
"""
from __future__ import annotations
'''


def _is_ours(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "__future__" or (node.module or "").startswith(_OURS) or node.level > 0
    if isinstance(node, ast.Import):
        return any(a.name.startswith(_OURS) for a in node.names)
    return False


def _bindings(node: ast.Import | ast.ImportFrom) -> list[tuple[str, str]]:
    """(name bound, a one-name import statement binding it) for each name the import binds."""
    out = []
    for alias in node.names:
        suffix = f" as {alias.asname}" if alias.asname else ""
        if isinstance(node, ast.ImportFrom):
            out.append((alias.asname or alias.name, f"from {node.module} import {alias.name}{suffix}"))
        else:
            out.append((alias.asname or alias.name.split(".")[0], f"import {alias.name}{suffix}"))
    return out


def _segment(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return "".join(lines[first - 1: node.end_lineno])


def architecture_source() -> str:
    """The text of the self-contained architecture file."""
    imports: dict[str, str] = {}  # bound name -> the import statement that binds it (the first one wins)
    bodies: list[str] = []
    for module, names in _PARTS:
        text = inspect.getsource(module)
        lines = text.splitlines(keepends=True)
        tree = ast.parse(text)
        for i, node in enumerate(tree.body):
            docstring = i == 0 and isinstance(node, ast.Expr) and isinstance(getattr(node, "value", None), ast.Constant)
            if docstring or _is_ours(node):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if names is None:
                    for binding, statement in _bindings(node):
                        imports.setdefault(binding, statement)
                continue
            if names is None or getattr(node, "name", None) in names:
                bodies.append(_segment(lines, node).rstrip() + "\n")
    header = _HEADER.format(callable=CALLABLE)
    return header + "\n" + "\n".join(sorted(set(imports.values()))) + "\n\n\n" + "\n\n".join(bodies)
