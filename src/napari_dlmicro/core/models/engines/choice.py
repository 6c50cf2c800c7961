"""The engine choice: which runtimes exist, which are installed, and the setting that picks one."""
from __future__ import annotations

import functools
import importlib.util

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.settings import Setting

AUTO = "auto"
TORCH = "torch"
ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
ENGINES = (AUTO, TORCH, ONNXRUNTIME, OPENVINO)
_IN_NAPARI = {"yes": False}  # OpenVINO is kept out of napari's process (see keep_out_of_napari)
_PACKAGES = {ONNXRUNTIME: ("onnxruntime", "onnxruntime"), OPENVINO: ("openvino", "openvino")}

ENGINE_SETTING = Setting(
    "engine", "Engine", AUTO, str, choices=ENGINES, cli="--engine",
    help="Where the network runs on the CPU: torch, ONNX Runtime or OpenVINO (in full float32 precision); "
         "auto uses the one measured fastest on this machine for the model (measured once, then remembered). "
         "On a GPU the network runs in torch.",
)


@functools.cache
def installed(engine: str) -> bool:
    """True when the runtime of ``engine`` imports here (torch always does)."""
    if engine in (AUTO, TORCH):
        return True
    module, _ = _PACKAGES[engine]
    return importlib.util.find_spec(module) is not None and importlib.util.find_spec("onnx") is not None


def keep_out_of_napari() -> None:
    """Called by the docks: in napari's process OpenVINO is neither offered nor chosen by ``auto``.

    Run from napari's worker threads next to its OpenGL canvas, OpenVINO's CPU
    plugin crashed the whole process (segmentation fault, napari 0.9.2, OpenVINO
    2026.4, Mesa); headless, the same models run fine. A crash would lose what
    the user painted, so inside napari the docks use torch or ONNX Runtime.
    """
    _IN_NAPARI["yes"] = True


def engine_choices() -> tuple[str, ...]:
    """The engines a user may pick in this process."""
    return tuple(e for e in ENGINES if not (_IN_NAPARI["yes"] and e == OPENVINO))


def check_engine(name: str | None) -> str:
    """``name`` as an engine choice (None: auto); unknown or uninstalled engines are a clear error."""
    engine = (name or AUTO).strip().lower()
    if engine not in ENGINES:
        raise UserError(f"there is no engine '{name}'", f"use one of {', '.join(ENGINES)}")
    if engine not in engine_choices():
        raise UserError("OpenVINO is not used inside napari (it crashed napari's process in our tests)",
                        "use ONNX Runtime or auto in the dock, or OpenVINO from the napari-dlmicro command")
    if not installed(engine):
        raise UserError(f"the {engine} engine is not installed here",
                        f"install it (pip install {_PACKAGES[engine][1]} onnx), or use the torch engine")
    return engine


def cpu_engines() -> tuple[str, ...]:
    """The engines ``auto`` chooses from on the CPU: torch and whichever runtimes are installed."""
    return tuple(e for e in (TORCH, ONNXRUNTIME, OPENVINO) if installed(e) and e in engine_choices())
