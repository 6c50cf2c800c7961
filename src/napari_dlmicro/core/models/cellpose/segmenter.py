"""Cellpose-SAM (cellpose 4) as a :class:`Segmenter`.

Weights. The pretrained ``cpsam`` comes through cellpose's own cache folder
(cellpose downloads it on first use). Any file, pretrained or picked by the
user, is first opened here with ``torch.load(weights_only=True)``, so a file
that would need full unpickling is refused before cellpose touches it, and an
incomplete one is refused instead of silently running with random weights
(cellpose itself loads state dicts with ``strict=False``).

Precision. bf16 on CUDA GPUs that support it (cellpose's own default); fp32
everywhere else, because CPUs emulate bf16 about 8x slower.

Normalisation. The segmentation job has already percentile-normalised the
image over the whole plane or volume, so cellpose's own normalisation is
switched off: doing it again per call would rescale every tile and preview crop
differently.

Tiling. Cellpose-SAM tiles by itself (256 px tiles, 10 % overlap, fixed by the
network), so the job's ``tile`` argument is not used. Progress comes from torch
hooks on the network: one event per batch of tiles, and the same hooks stop the
run when the user cancels.

3D. A ZYX volume is segmented natively (``ModelInfo.spatial_ndim == 3``). With
``stitch_threshold == 0`` cellpose's ``do_3D`` runs the 2D network over the YX,
ZY and ZX planes and follows averaged 3D flows: the best masks, but at least
three times the 2D cost and far more for thin stacks, whose ZY/ZX planes are
padded up to 256 px. With ``stitch_threshold > 0`` each plane is segmented in 2D
and overlapping masks of neighbouring planes are joined, at the 2D cost.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.base import ModelInfo, Segmenter
from napari_dlmicro.core.models.cellpose.tiling import (
    CPU_BATCH,
    GPU_BATCH,
    MAX_CHANNELS,
    SETTINGS,
    cpu_cost_estimate,
    network_work,
)
from napari_dlmicro.core.models.cellpose.weights import (
    cellpose_module,
    check_weights_file,
    locate_weights,
)
from napari_dlmicro.core.runtime.cancel import CancelToken, cancellable_forward, run_blocking
from napari_dlmicro.core.runtime.devices import resolve_device
from napari_dlmicro.core.runtime.events import (
    Job,
    Level,
    Notice,
    Progress,
    ProgressClock,
)
from napari_dlmicro.core.runtime.oom import free_gpu_memory, is_out_of_memory


def _use_bfloat16(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def load_cellpose(
    model: str | Path = "cpsam",
    device: torch.device | str | None = None,
) -> CellposeSegmenter:
    """Load Cellpose-SAM: a catalogue name (``cpsam``) or a Cellpose 4 weights file.

    ``device`` is a ``torch.device`` or a name for :func:`resolve_device`
    (``None`` = auto). Raises :class:`UserError` when the weights cannot be
    downloaded (saying what to download and where to put it), or when a file is
    unsafe to open or not a complete Cellpose-SAM model.
    """
    device = device if isinstance(device, torch.device) else resolve_device(device)
    path, name = locate_weights(model)
    check_weights_file(path)
    cp_model = cellpose_module("models").CellposeModel(
        pretrained_model=str(path), device=device, use_bfloat16=_use_bfloat16(device)
    )
    return CellposeSegmenter(cp_model, name=name, source=str(path))



def _with_channels(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """``image`` with a trailing channel axis, and whether it is a volume.

    YX and ZYXC are unambiguous; a 3D array is YXC when its last axis has at
    most 3 entries, ZYX otherwise.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] > MAX_CHANNELS):
        image = image[..., None]
    if image.ndim not in (3, 4):
        raise UserError(f"Cellpose got an image of shape {image.shape}", "give it a YX, YXC, ZYX or ZYXC image")
    if image.shape[-1] > MAX_CHANNELS:
        raise UserError(
            f"Cellpose-SAM takes at most {MAX_CHANNELS} channels, this image has {image.shape[-1]}",
            "choose up to 3 channels (e.g. cytoplasm and nuclei)",
        )
    return image, image.ndim == 4


def _eval_options(settings: Mapping[str, Any], volume: bool) -> dict[str, Any]:
    s = {**{x.name: x.default for x in SETTINGS}, **settings}
    options: dict[str, Any] = {
        "channel_axis": -1,
        "normalize": {"normalize": False},  # a dict: cellpose mutates its module default for a bool
        "diameter": float(s["diameter"]) if s["diameter"] > 0 else None,
        "flow_threshold": float(s["flow_threshold"]),
        "cellprob_threshold": float(s["cellprob_threshold"]),
        "min_size": int(s["min_size"]),
        "niter": int(s["niter"]) or None,
    }
    if volume:
        options["z_axis"] = 0
        if s["stitch_threshold"] > 0:
            options["stitch_threshold"] = float(s["stitch_threshold"])
        else:
            options.update(do_3D=True, anisotropy=float(s["anisotropy"]))
    return options


class _BatchReporter:
    """Torch hooks on the network: a cancel check before each batch, progress after it.

    The hooks act only in the thread that attached them: a cancelled run whose
    pass still ends in the background must not check its token in the next
    run's pass on the same network (Cancel, then Run at once).
    """

    def __init__(self, emit: Callable[[Any], None], token: CancelToken, batches: int) -> None:
        self.emit = emit
        self.token = token
        self.batches = max(1, batches)
        self.done = 0
        self.in_forward = False
        self.thread = threading.get_ident()
        self.clock = ProgressClock(self.batches + 1, "Cellpose")  # +1: the flow dynamics

    def before(self, module: torch.nn.Module, args: Any) -> None:
        if threading.get_ident() != self.thread:
            return
        self.token.check()
        self.in_forward = True

    def after(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        if threading.get_ident() != self.thread:
            return
        self.in_forward = False
        self.done += 1
        if self.done > self.batches:  # cellpose tiled differently than predicted
            self.batches = self.done
            self.clock.total = self.done + 1
        self.emit(self.progress())

    def progress(self) -> Progress:
        if self.done < self.batches:
            return self.clock.tick(self.done, f"Cellpose: tile batch {self.done + 1} of {self.batches}")
        return self.clock.tick(self.done, "Cellpose: following flows to masks")

    @contextlib.contextmanager
    def attached(self, net: torch.nn.Module) -> Iterator[None]:
        handles = [net.register_forward_pre_hook(self.before), net.register_forward_hook(self.after)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def next_after_oom(batch_size: int, device_type: str, in_network: bool) -> tuple[int, bool] | None:
    """What to try after running out of memory: (batch size, move to CPU), or None.

    A smaller batch helps only if the network ran out; out of memory in the
    flow dynamics, or at batch size 1, goes to the CPU.
    """
    if in_network and batch_size > 1:
        return batch_size // 2, False
    if device_type != "cpu":
        return CPU_BATCH, True
    return None


class CellposeSegmenter(Segmenter):
    """A loaded Cellpose-SAM model; build it with :func:`load_cellpose`."""

    def __init__(self, model: Any, name: str = "cellpose", source: str = "") -> None:
        self.model = model  # a cellpose.models.CellposeModel
        self.batch_size = CPU_BATCH if model.device.type == "cpu" else GPU_BATCH
        self.info = ModelInfo(
            name=name,
            kind="cellpose",
            spatial_ndim=3,
            also_2d=True,
            n_channels=MAX_CHANNELS,
            source=source,
            settings=SETTINGS,
            notes="Cellpose-SAM takes 1 to 3 channels in any order; it is trained for objects "
            "about 30 px across and runs slowly without a GPU (minutes per 512x512 image).",
        )

    @property
    def device(self) -> torch.device:
        """Where the network runs now (the CPU after a GPU out-of-memory fallback)."""
        return self.model.device

    def cpu_cost_estimate(self, shape: tuple[int, ...], settings: Mapping[str, float] | None = None) -> float:
        """Rough seconds on this CPU for a YX or ZYX image; see :func:`cpu_cost_estimate`."""
        return cpu_cost_estimate(shape, settings)

    def segment(
        self,
        image: np.ndarray,
        settings: dict[str, Any],
        token: CancelToken,
        tile: int | None = None,
    ) -> Job:
        """Segment one YX[C] or ZYX[C] float32 image; returns int32 labels of its spatial shape.

        ``tile`` is ignored: cellpose tiles by itself at the network's 256 px.
        """
        x, volume = _with_channels(image)
        options = _eval_options(settings, volume)
        masks = yield from self._run_with_retries(x, options, token)
        return np.asarray(masks).reshape(x.shape[:-1]).astype(np.int32, copy=False)

    def _run_with_retries(self, x: np.ndarray, options: dict[str, Any], token: CancelToken) -> Job:
        while True:
            batches, _ = network_work(x.shape[:-1], _settings_of(options), self.batch_size)
            reporter: _BatchReporter | None = None

            def call(emit: Callable[[Any], None], batches: int = batches) -> np.ndarray:
                nonlocal reporter
                reporter = _BatchReporter(emit, token, batches)
                emit(reporter.clock.tick(0, "Cellpose: starting"))
                with reporter.attached(self.model.net), cancellable_forward(self.model.net, token):
                    masks = self.model.eval(x, batch_size=self.batch_size, **options)[0]
                return masks

            try:
                masks = yield from run_blocking(call, token)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                yield self._recover_from_oom(exc, in_network=bool(reporter and reporter.in_forward))
                continue
            yield reporter.clock.tick(reporter.clock.total, "Cellpose: done")
            return masks

    def _recover_from_oom(self, exc: BaseException, in_network: bool) -> Notice:
        free_gpu_memory(self.device)
        plan = next_after_oom(self.batch_size, self.device.type, in_network)
        if plan is None:
            raise UserError(
                "Cellpose ran out of memory even on the CPU",
                "segment a smaller region, or set a larger diameter so the image is shrunk",
            ) from exc
        self.batch_size, to_cpu = plan
        if not to_cpu:
            return Notice(
                f"GPU memory ran out; Cellpose retries with {self.batch_size} tile(s) per batch", Level.WARNING
            )
        _move_to_cpu(self.model)
        return Notice(
            "GPU memory ran out even one tile at a time; Cellpose now runs on the CPU (much slower). "
            "Reload the model to use the GPU again",
            Level.WARNING,
        )


def _settings_of(options: Mapping[str, Any]) -> dict[str, float]:
    """The tiling-relevant settings back from cellpose's eval options."""
    return {
        "diameter": options["diameter"] or 0.0,
        "stitch_threshold": options.get("stitch_threshold", 0.0),
        "anisotropy": options.get("anisotropy") or 1.0,
    }


def _move_to_cpu(model: Any) -> None:
    """Move a CellposeModel to the CPU in fp32 (the net's ``dtype`` is what cellpose feeds it)."""
    model.net.to(torch.device("cpu"))
    model.net.dtype = torch.float32
    model.device = torch.device("cpu")
    model.gpu = False
