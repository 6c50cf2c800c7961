"""ONNX Runtime and OpenVINO sessions over one ONNX file, on the CPU, in float32.

Sessions are kept per (file, engine, thread count), so that re-running a model
(a preview, the next file) does not rebuild them. A run stops inside the
runtime when its token is cancelled (ONNX Runtime's terminate flag, OpenVINO's
request cancel), so a large tile never holds a cancel for a whole pass. OpenVINO is asked for float32
inference explicitly: on CPUs with bf16 units its default is bf16, which moved
StarDist's distances by up to 0.4 pixels.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.models.engines.choice import ONNXRUNTIME, OPENVINO
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken

KEEP = 6  # sessions kept open (each holds a copy of its network's weights)
POLL_MS = 50  # how often a running OpenVINO request looks at its token
_LOCK = threading.Lock()
_SESSIONS: OrderedDict[tuple, Backend] = OrderedDict()


class Backend:
    """One network in one runtime: ``run(x, token)`` returns its outputs as float32 arrays."""

    engine: str = ""

    def run(self, x: np.ndarray, token: CancelToken = NEVER) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError


class OrtBackend(Backend):
    """An ONNX Runtime session on the CPU."""

    engine = ONNXRUNTIME

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort  # heavy and optional: imported when the engine is first used

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # on a CPU shared with other work, spinning threads only take cycles from it
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._ort = ort
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray, token: CancelToken = NEVER) -> list[np.ndarray]:
        feeds = {self.input_name: np.ascontiguousarray(x, np.float32)}
        if token is NEVER:
            return self.session.run(None, feeds)
        options = self._ort.RunOptions()
        finished = threading.Event()

        def watch() -> None:  # sets the terminate flag the session polls between its kernels
            while not finished.is_set():
                if token.wait(POLL_MS / 1000):
                    options.terminate = True
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            return self.session.run(None, feeds, options)
        except Exception:
            if token.cancelled:
                raise Cancelled() from None
            raise
        finally:
            finished.set()


class OpenVinoBackend(Backend):
    """An OpenVINO model compiled for the CPU with dynamic sizes, inference precision float32."""

    engine = OPENVINO

    def __init__(self, path: Path, threads: int) -> None:
        import openvino as ov  # heavy and optional: imported when the engine is first used

        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": max(1, int(threads)),
                  "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.outputs = list(self.compiled.outputs)
        self._local = threading.local()  # an infer request serves one thread at a time

    @property
    def precision(self) -> str:
        """The inference precision the compiled model runs with (``f32``)."""
        return str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))

    def run(self, x: np.ndarray, token: CancelToken = NEVER) -> list[np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        if token is NEVER:
            result = request.infer({0: np.ascontiguousarray(x, np.float32)})
            return [np.array(result[o], np.float32) for o in self.outputs]
        request.start_async({0: np.ascontiguousarray(x, np.float32)})
        while not request.wait_for(POLL_MS):
            if token.cancelled:
                # not waited for: the CPU plugin may finish its current layers first; a new request runs next
                request.cancel()
                self._local.request = None
                raise Cancelled()
        return [np.array(request.get_tensor(o).data, np.float32) for o in self.outputs]


def backend(engine: str, path: Path, threads: int) -> Backend:
    """The session of ``engine`` over the ONNX file at ``path``, opened on first use and kept."""
    key = (engine, str(path), int(threads))
    with _LOCK:
        if key in _SESSIONS:
            _SESSIONS.move_to_end(key)
            return _SESSIONS[key]
    made = OrtBackend(path, threads) if engine == ONNXRUNTIME else OpenVinoBackend(path, threads)
    with _LOCK:
        _SESSIONS[key] = made
        while len(_SESSIONS) > KEEP:
            _SESSIONS.popitem(last=False)
    return made


def close_all(engines: Sequence[str] = (ONNXRUNTIME, OPENVINO)) -> None:
    """Close every kept session of ``engines`` (frees their memory)."""
    with _LOCK:
        for key in [k for k in _SESSIONS if k[0] in engines]:
            del _SESSIONS[key]
