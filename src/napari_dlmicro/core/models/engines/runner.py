"""One network's forward pass on the engine chosen for it.

A :class:`NetRunner` takes the network input as a numpy array (batch, channel,
spatial...) and returns the network's outputs as numpy arrays, from torch (the
model's own forward function, called with the input and the cancel token, which
it checks layer by layer) or from the network exported to ONNX and run by ONNX
Runtime or OpenVINO on the CPU (the token is checked before and after: a
runtime's forward pass cannot be stopped half way, and takes a fraction of a
second on our networks). ``auto`` looks up the engine measured
fastest for this network and input size on this machine, or measures it on
the first input (:mod:`.auto`). If the weights change after an export (a model
trained further in the same session), the next call exports them again.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from napari_dlmicro.core.models.engines import auto
from napari_dlmicro.core.models.engines.backends import backend
from napari_dlmicro.core.models.engines.choice import AUTO, TORCH, check_engine, cpu_engines
from napari_dlmicro.core.models.engines.onnx_export import architecture_signature, cached_onnx, weights_fingerprint
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, call_abandoning

Outputs = tuple[np.ndarray, ...]
TorchForward = Callable[[np.ndarray, CancelToken], Outputs]  # (input, token) -> outputs


class NetRunner:
    """Runs ``net``'s forward pass with ``engine`` (auto, torch, onnxruntime, openvino)."""

    def __init__(self, net: nn.Module, torch_forward: TorchForward, engine: str = TORCH,
                 output_names: Sequence[str] = ("output",)) -> None:
        self.net = net
        self.torch_forward = torch_forward
        self.choice = check_engine(engine)
        self.output_names = tuple(output_names)
        self._lock = threading.Lock()
        self._weights: tuple[tuple[int, ...], str] | None = None  # (parameter versions, fingerprint)
        self.last_engine = TORCH if self.choice == AUTO else self.choice  # what the latest call ran on

    def __getstate__(self) -> dict:
        """Picklable (a cluster's workers get loaded models): the lock is made again where it lands."""
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def on_cpu(self) -> bool:
        """True when the network lives on the CPU (other engines than torch run only there)."""
        first = next(iter(self.net.parameters()), None)
        return first is None or first.device.type == "cpu"

    def __call__(self, x: np.ndarray, token: CancelToken = NEVER) -> Outputs:
        """The network's outputs for ``x`` (batch, channel, spatial...), float32; a cancelled ``token`` stops it."""
        token.check()
        engine = self.choice
        if engine == TORCH or not self.on_cpu:
            self.last_engine = TORCH
            # one layer of a huge tile can take seconds: the caller is free at a cancel, the layer ends behind it
            return call_abandoning(self.torch_forward, x, token, token=token)
        if engine == AUTO:
            key = auto.decision_key(architecture_signature(self.net), x.shape[2:], torch.get_num_threads())
            engine = auto.remembered(key)
            if engine is None or engine not in cpu_engines():  # never measured, or not allowed in this process
                return self._measure(key, x, token)
        self.last_engine = engine
        return self._run(engine, x, token)

    def _run(self, engine: str, x: np.ndarray, token: CancelToken = NEVER) -> Outputs:
        if engine == TORCH:
            return call_abandoning(self.torch_forward, x, token, token=token)
        path = cached_onnx(self.net, torch.from_numpy(np.ascontiguousarray(x[:1])), self.output_names,
                           self.fingerprint(), token)
        outputs = tuple(backend(engine, path, torch.get_num_threads()).run(x, token))
        token.check()
        return outputs

    def _measure(self, key: str, x: np.ndarray, token: CancelToken) -> Outputs:
        runs = {engine: (lambda e=engine: self._run(e, x, token)) for engine in cpu_engines()}
        best, seconds, outputs = auto.measure(runs)
        auto.remember(key, best, seconds)
        self.last_engine = best
        return outputs[best]

    def fingerprint(self) -> str:
        """The hash of the network's current weights (recomputed only after they changed)."""
        versions = tuple(p._version for p in self.net.parameters())  # bumped by every in-place update
        with self._lock:
            if self._weights is None or self._weights[0] != versions:
                self._weights = (versions, weights_fingerprint(self.net, ",".join(self.output_names)))
            return self._weights[1]


def torch_runner(net: nn.Module, torch_forward: TorchForward,
                 output_names: Sequence[str] = ("output",)) -> NetRunner:
    """A runner that runs ``net`` in torch (a model's default until an engine is chosen)."""
    return NetRunner(net, torch_forward, TORCH, output_names)


def with_engine(runner: NetRunner, engine: str | None) -> NetRunner:
    """``runner`` if it already runs ``engine``, else a runner of the same network on ``engine``."""
    engine = check_engine(engine)
    if runner.choice == engine:
        return runner
    return NetRunner(runner.net, runner.torch_forward, engine, runner.output_names)
