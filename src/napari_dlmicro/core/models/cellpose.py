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
import http.client
import math
import pickle
import ssl
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from ..cancel import CancelToken, run_blocking
from ..devices import free_gpu_memory, is_out_of_memory, resolve_device
from ..errors import UserError
from ..events import Job, Notice, Progress, ProgressClock
from .base import ModelInfo, Segmenter, Setting

TILE = 256  # Cellpose-SAM's network tile; cellpose refuses any other size
TILE_OVERLAP = 0.1  # cellpose's default overlap between tiles
PAD = 16  # cellpose pads each side to a multiple of 16, plus 16
TRAINED_DIAMETER = 30.0  # object size (px) Cellpose-SAM was trained on
CPU_BATCH = 1  # one tile per forward: a cancel answers within one tile
GPU_BATCH = 8  # cellpose's default
MAX_CHANNELS = 3

# Calibration, fp32 on 2 CPU threads: one 512x512 image (9 tiles) takes ~80 s,
# ~8 s a tile in the network and the rest in the flow dynamics.
_CALIBRATION_THREADS = 2
_NETWORK_S_PER_TILE = 8.0
_DYNAMICS_S_PER_PIXEL = (80.0 - 9 * _NETWORK_S_PER_TILE) / (512 * 512)

SETTINGS = (
    Setting(
        "diameter", "Object diameter (px)", 0.0, 0.0, 1000.0, 1.0,
        "Typical object diameter in pixels; 0 leaves the image as it is. Cellpose-SAM "
        "is trained on objects about 30 px across: a diameter D rescales the image by "
        "30/D before the network (D below 30 enlarges it, so it runs slower).",
    ),
    Setting(
        "flow_threshold", "Flow threshold", 0.4, 0.0, 3.0, 0.05,
        "Largest flow error a mask may have: raise it to keep more (and less regular) "
        "masks, lower it to drop ill-shaped ones. Not used for true 3D.",
    ),
    Setting(
        "cellprob_threshold", "Cell probability threshold", 0.0, -6.0, 6.0, 0.1,
        "Pixels whose cell probability (a logit) is above this go into masks: lower it "
        "to find more and larger masks, raise it for fewer and tighter ones.",
    ),
    Setting(
        "min_size", "Minimum size (px)", 15.0, 0.0, 100000.0, 1.0,
        "Masks with fewer pixels (voxels in 3D) than this are dropped.",
    ),
    Setting(
        "niter", "Flow iterations", 0.0, 0.0, 5000.0, 10.0,
        "Steps of the flow dynamics that gather pixels into masks; 0 picks it "
        "automatically (200, scaled with the diameter). Raise it for long, thin objects.",
    ),
    Setting(
        "stitch_threshold", "3D stitch threshold", 0.0, 0.0, 1.0, 0.05,
        "Volumes only. 0: true 3D, the network runs over YX, ZY and ZX planes (best "
        "masks, at least 3x the 2D time). Above 0: each plane is segmented in 2D and "
        "masks in neighbouring planes that overlap by more than this IoU are joined "
        "(much faster on a CPU).",
    ),
    Setting(
        "anisotropy", "Z anisotropy", 1.0, 0.1, 50.0, 0.1,
        "True 3D only: Z step divided by the XY pixel size (2 when planes are twice as "
        "far apart as pixels); the volume is stretched along Z to match.",
    ),
)


# --------------------------------------------------------------------------- loading


def pretrained_names() -> tuple[str, ...]:
    """The Cellpose-SAM names in cellpose's own catalogue (``cpsam``, ...)."""
    from cellpose import models as cp_models

    names = getattr(cp_models, "MODEL_NAMES", ["cpsam"])
    return tuple(n for n in names if n.startswith("cpsam"))


def pretrained_location(name: str) -> tuple[str, Path]:
    """The URL cellpose downloads ``name`` from and the file it caches it as."""
    from cellpose import models as cp_models

    base = getattr(cp_models, "_MODEL_URL", "https://huggingface.co/mouseland/cellpose-sam/resolve/main/")
    return base + name, Path(cp_models.MODEL_DIR) / name


@contextlib.contextmanager
def _keep_ssl_verification() -> Iterator[None]:
    # cellpose's downloader switches off certificate checks for the whole
    # process; put them back once it is done.
    saved = ssl._create_default_https_context
    try:
        yield
    finally:
        ssl._create_default_https_context = saved


def _cached_pretrained(name: str) -> Path:
    """The cached file of a pretrained model, downloaded by cellpose if missing."""
    from cellpose import models as cp_models

    url, target = pretrained_location(name)
    if target.is_file():
        return target
    try:
        with _keep_ssl_verification():
            return Path(cp_models.cache_model_path(name))
    except (OSError, http.client.HTTPException) as exc:
        raise UserError(
            f"could not download the Cellpose model '{name}' ({exc})",
            f"on a machine with internet, download {url} and save it, named '{name}', "
            f"in the folder {target.parent} (or set CELLPOSE_LOCAL_MODELS_PATH to the "
            "folder holding it before starting)",
        ) from exc


def _locate_weights(model: str | Path) -> tuple[Path, str]:
    """The weights file for a catalogue name or a path, and a display name."""
    if isinstance(model, str) and model in pretrained_names():
        return _cached_pretrained(model), f"cellpose:{model}"
    path = Path(model).expanduser()
    if not path.exists():
        names = ", ".join(pretrained_names())
        raise UserError(
            f"'{model}' is neither a Cellpose-SAM model name nor an existing file",
            f"use one of {names}, or pick a Cellpose 4 weights file",
        )
    if not path.is_file():
        raise UserError(f"'{path}' is a folder, not a Cellpose weights file", "pick the weights file inside it")
    return path, path.name


def _read_state_dict(path: Path) -> Mapping[str, Any]:
    """Open a weights file as tensors only: nothing in it can run code."""
    if not zipfile.is_zipfile(path):
        raise _not_weights(path, "not in torch.save's zip format")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise UserError(
                f"'{path.name}' holds Python objects that only full unpickling could load, "
                "and unpickling a file can run any code hidden in it, so it was not opened",
                "use a Cellpose 4 model saved as a plain state dict (cellpose's training "
                "saves those), or re-save it from a trusted session with "
                "torch.save(model.net.state_dict(), path)",
            ) from exc
        raise _not_weights(path, exc) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise _not_weights(path, exc) from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"'{path.name}' is a PyTorch file but not a model's state dict", "pick a Cellpose 4 weights file")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _not_weights(path: Path, exc: BaseException | str) -> UserError:
    return UserError(
        f"'{path.name}' could not be read as PyTorch weights ({exc})",
        "pick a Cellpose 4 weights file saved with torch.save; a file saved in torch's "
        "old format must be re-saved with a current torch",
    )


def _expected_weights() -> dict[str, torch.Size]:
    """Names and shapes of Cellpose-SAM's trained weights (built on the meta device: no memory)."""
    from cellpose.vit import CPSAM

    with torch.device("meta"):
        net = CPSAM()
    return {name: p.shape for name, p in net.named_parameters() if p.requires_grad}


def check_weights_file(path: Path) -> None:
    """Refuse a file that is unsafe, not Cellpose 4, or not a complete Cellpose-SAM model."""
    state = _read_state_dict(path)
    if "W2" not in state:
        raise UserError(
            f"'{path.name}' is not a Cellpose 4 model (Cellpose 3 and older models do not work with Cellpose-SAM)",
            "use 'cpsam' or a model fine-tuned with cellpose 4",
        )
    if "encoder.cls_token" in state:
        raise UserError(f"'{path.name}' is a Cellpose-DINO model; only Cellpose-SAM models are supported", "use 'cpsam'")
    expected = _expected_weights()
    missing = [k for k in expected if k not in state]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k]]
    if missing or wrong:
        bad = missing or wrong
        raise UserError(
            f"'{path.name}' is not a complete Cellpose-SAM model: {len(missing)} weights missing, "
            f"{len(wrong)} of the wrong shape (e.g. {bad[0]})",
            "pick the full file that cellpose saved",
        )


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
    from cellpose.models import CellposeModel

    device = device if isinstance(device, torch.device) else resolve_device(device)
    path, name = _locate_weights(model)
    check_weights_file(path)
    cp_model = CellposeModel(pretrained_model=str(path), device=device, use_bfloat16=_use_bfloat16(device))
    return CellposeSegmenter(cp_model, name=name, source=str(path))


# --------------------------------------------------------------------------- tiling and cost


def _padded(n: int) -> int:
    """The length cellpose pads one image side to before tiling it."""
    if n < TILE:
        return max(n + PAD, TILE)
    return PAD * math.ceil(n / PAD) + PAD


def _tiles_along(n: int) -> int:
    padded = _padded(n)
    return 1 if padded <= TILE else math.ceil((1 + 2 * TILE_OVERLAP) * padded / TILE)


def _plane_batches(planes: int, ly: int, lx: int, batch_size: int) -> tuple[int, int]:
    """(network batches, tiles) for ``planes`` planes of ``ly`` x ``lx``, as cellpose groups them."""
    tiles = _tiles_along(ly) * _tiles_along(lx)
    per_chunk = max(1, batch_size // tiles)  # planes batched together
    full, rest = divmod(planes, per_chunk)
    batches = full * math.ceil(per_chunk * tiles / batch_size)
    batches += math.ceil(rest * tiles / batch_size)
    return batches, planes * tiles


def network_work(
    shape: tuple[int, ...], settings: Mapping[str, float] | None = None, batch_size: int = CPU_BATCH
) -> tuple[int, int]:
    """(network batches, tiles) cellpose will run for a YX or ZYX image of ``shape``."""
    s = {**{x.name: x.default for x in SETTINGS}, **(settings or {})}
    rescale = TRAINED_DIAMETER / s["diameter"] if s["diameter"] > 0 else 1.0
    if len(shape) == 2 or (len(shape) == 3 and s["stitch_threshold"] > 0):
        planes = 1 if len(shape) == 2 else shape[0]
        ly, lx = shape[-2:]
        if rescale != 1.0:
            ly, lx = int(ly * rescale), int(lx * rescale)
        return _plane_batches(planes, ly, lx, batch_size)
    lz, ly, lx = shape
    if rescale != 1.0 or s["anisotropy"] != 1.0:
        lz, ly, lx = int(lz * s["anisotropy"] * rescale), int(ly * rescale), int(lx * rescale)
    views = [_plane_batches(lz, ly, lx, batch_size), _plane_batches(ly, lz, lx, batch_size),
             _plane_batches(lx, lz, ly, batch_size)]
    return sum(v[0] for v in views), sum(v[1] for v in views)


def cpu_cost_estimate(
    shape: tuple[int, ...], settings: Mapping[str, float] | None = None, threads: int | None = None
) -> float:
    """Rough seconds Cellpose-SAM needs on this CPU for a YX or ZYX image of ``shape``.

    Scaled from ~80 s for one 512x512 image in fp32 on 2 threads: the network
    part by the number of 256 px tiles cellpose will run, the flow dynamics by
    pixel count, both by torch's thread count (``threads``, default: torch's).
    """
    threads = threads or torch.get_num_threads()
    _, tiles = network_work(tuple(shape), settings)
    seconds = tiles * _NETWORK_S_PER_TILE + math.prod(shape) * _DYNAMICS_S_PER_PIXEL
    return seconds * _CALIBRATION_THREADS / max(1, threads)


# --------------------------------------------------------------------------- running


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
    """Torch hooks on the network: a cancel check before each batch, progress after it."""

    def __init__(self, emit: Callable[[Any], None], token: CancelToken, batches: int) -> None:
        self.emit = emit
        self.token = token
        self.batches = max(1, batches)
        self.done = 0
        self.in_forward = False
        self.clock = ProgressClock(self.batches + 1, "Cellpose")  # +1: the flow dynamics

    def before(self, module: torch.nn.Module, args: Any) -> None:
        self.token.check()
        self.in_forward = True

    def after(self, module: torch.nn.Module, args: Any, output: Any) -> None:
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

            def call(emit: Callable[[Any], None]) -> np.ndarray:
                nonlocal reporter
                reporter = _BatchReporter(emit, token, batches)
                emit(reporter.clock.tick(0, "Cellpose: starting"))
                with reporter.attached(self.model.net):
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
            return Notice(f"GPU memory ran out; Cellpose retries with {self.batch_size} tile(s) per batch", "warning")
        _move_to_cpu(self.model)
        return Notice(
            "GPU memory ran out even one tile at a time; Cellpose now runs on the CPU (much slower). "
            "Reload the model to use the GPU again",
            "warning",
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
