"""``auto``: the engine measured fastest on this machine for a network and an input size, measured once.

A decision is keyed by the machine (processor, core count, thread count, the
runtimes' versions), the network's architecture (not its weights: they do not
change its speed) and the input size rounded to a power of two per axis, and
kept in ``decisions.json`` in the engines folder. Measuring runs each engine
once to warm it up, then twice more in turn (interleaved, so that a change in
the machine's load hits every engine alike), and compares the medians.
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.models.paths import engines_dir

ROUNDS = 2  # timed runs per engine after its warm-up
_LOCK = threading.Lock()
_MEMORY: dict[str, dict[str, Any]] = {}


def decisions_file() -> Path:
    """Where the measured choices are remembered."""
    return engines_dir() / "decisions.json"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def _processor() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def decision_key(architecture: str, shape: Sequence[int], threads: int) -> str:
    """The key of one decision: machine, runtimes, architecture, thread count and size class of the input."""
    size_class = "x".join(str(1 << max(0, int(np.ceil(np.log2(max(1, n)))))) for n in shape)
    versions = ",".join(f"{p}={_version(p)}" for p in ("torch", "onnxruntime", "openvino"))
    return f"{_processor()}|{os.cpu_count()}|{threads}|{versions}|{architecture}|{size_class}"


def _read() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(decisions_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def remembered(key: str) -> str | None:
    """The engine decided for ``key`` before (in this process or an earlier one), or None."""
    with _LOCK:
        if key not in _MEMORY:
            entry = _read().get(key)
            if isinstance(entry, dict) and entry.get("engine"):
                _MEMORY[key] = entry
        entry = _MEMORY.get(key)
    return str(entry["engine"]) if entry else None


def remember(key: str, engine: str, seconds: dict[str, float]) -> None:
    """Keep the decision for ``key`` (a write failure keeps it for this process only)."""
    entry = {"engine": engine, "seconds": seconds, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with _LOCK:
        _MEMORY[key] = entry
        data = _read()
        data[key] = entry
        try:
            with atomic_output(decisions_file()) as tmp:
                Path(tmp).write_text(json.dumps(data, indent=1))
        except UserError:
            pass  # a read-only cache: the decision holds for this process


def measure(runs: dict[str, Callable[[], Any]]) -> tuple[str, dict[str, float], dict[str, Any]]:
    """Time every candidate (warm-up, then :data:`ROUNDS` interleaved runs); the fastest, the medians, outputs.

    The outputs are those of each candidate's warm-up run, so measuring costs no
    extra run of the engine that was going to run anyway.
    """
    outputs: dict[str, Any] = {}
    for name, run in runs.items():
        try:
            outputs[name] = run()
        except Cancelled:
            raise
        except Exception:  # a runtime that cannot take this network is left out, not fatal
            if name == "torch":
                raise
    runs = {name: run for name, run in runs.items() if name in outputs}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    medians = {name: float(statistics.median(t)) for name, t in times.items()}
    return min(medians, key=medians.get), medians, outputs
