"""Keeping triton's LLVM out of a process that already holds another LLVM.

torch's optimisers and torchvision import ``torch._dynamo``, which loads
triton's bundled LLVM; next to Mesa's software OpenGL (napari under Xvfb,
remote desktops) that crashes the process. Nothing here compiles, so where an
LLVM is already loaded triton is marked absent before anything imports it.
"""
from __future__ import annotations

import sys


def llvm_loaded() -> bool:
    """True when a libLLVM is mapped into this process (Linux; False elsewhere)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libLLVM" in line for line in maps)
    except OSError:
        return False


def avoid_triton_crash() -> None:
    """Mark triton unavailable when importing it would load a second LLVM."""
    if "triton" not in sys.modules and llvm_loaded():
        sys.modules["triton"] = None  # type: ignore[assignment]
