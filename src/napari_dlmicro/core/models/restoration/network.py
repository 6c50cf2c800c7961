"""The image-to-image model shared by Noise2Void and CARE: network, folder, prediction.

The network is the shared U-Net with a 1x1 convolution head (and, for CARE,
a residual connection from input to output); a CARE super-resolution network
first interpolates its input to the target's grid (:mod:`.upsample`). A
:class:`RestorationModel` bundles the network with its ``config.json``
dictionary, which holds the normalisation, so that prediction maps pixels
back into the target's units, and the upsampling factors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import reads_whole_folders
from napari_dlmicro.core.models.engines.choice import TORCH
from napari_dlmicro.core.models.engines.runner import NetRunner, torch_runner, with_engine
from napari_dlmicro.core.models.folder import load_safetensors, read_config, save_model_folder
from napari_dlmicro.core.models.paths import store_dir
from napari_dlmicro.core.models.restoration import intensity, upsample
from napari_dlmicro.core.nets.unet import UNet, UNetConfig, conv_nd
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken, call_abandoning, cancellable_forward
from napari_dlmicro.core.runtime.devices import autocast

KINDS = ("n2v", "care")
VERSION = 1


class RestorationNet(nn.Module):
    """U-Net body, a 1x1 convolution to ``n_out`` channels, optional residual.

    With ``factors`` above 1 the input is first interpolated that many times
    larger along each spatial axis, and the network restores it there.
    """

    def __init__(self, unet: UNetConfig, n_out: int, residual: bool, factors: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.body = UNet(unet)
        self.head = conv_nd(unet.ndim)(unet.filters, n_out, 1)
        self.residual = bool(residual and unet.in_channels == n_out)
        self.factors = tuple(int(f) for f in factors) if factors and any(f > 1 for f in factors) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factors is not None:
            x = upsample.interpolate(x, self.factors)
        y = self.head(self.body(x))
        return y + x if self.residual else y


def default_unet(ndim: int, n_channels: int, depth: int = 2, filters: int = 32, n2v2: bool = False,
                 pool: tuple[int, ...] | None = None) -> UNetConfig:
    """The U-Net used for denoising unless asked otherwise.

    ``n2v2`` selects the N2V2 layout: max-blur-pooling and no top-level skip;
    ``pool`` the pooling factor per axis (2 along each by default).
    """
    return UNetConfig(ndim=ndim, in_channels=n_channels, depth=depth, filters=filters,
                      pool=tuple(pool or (2,) * ndim), act="relu", last_act="relu",
                      pool_mode="blur" if n2v2 else "max", top_skip=not n2v2)


@dataclass
class RestorationModel:
    """A trained (or training) restoration network and its configuration.

    ``runner`` runs the network on the engine chosen with :meth:`use_engine`
    (None: torch, as the training loop needs it).
    """

    net: RestorationNet
    config: dict[str, Any] = field(default_factory=dict)
    runner: NetRunner | None = field(default=None, repr=False, compare=False)

    def use_engine(self, engine: str | None) -> RestorationModel:
        """Run the network on ``engine`` from now on (auto, torch, onnxruntime, openvino; see :mod:`..engines`)."""
        current = self.runner or torch_runner(self.net, self._torch_forward)
        self.runner = with_engine(current, engine)
        return self

    def _torch_forward(self, x: np.ndarray, token: CancelToken = NEVER) -> tuple[np.ndarray]:
        t = torch.from_numpy(x).to(self.device)
        if t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device), cancellable_forward(self.net, token):
            return (self.net.eval()(t).float().cpu().numpy(),)

    @property
    def kind(self) -> str:
        return str(self.config["kind"])

    @property
    def ndim(self) -> int:
        return int(self.config["unet"]["ndim"])

    @property
    def n_channels(self) -> int:
        return int(self.config["unet"]["in_channels"])

    @property
    def div_by(self) -> tuple[int, ...]:
        """What each spatial size of an input must be a multiple of (for an upsampling model, once interpolated)."""
        return upsample.input_div_by(UNetConfig.from_dict(self.config["unet"]).div_by, self.factors)

    @property
    def factors(self) -> tuple[int, ...]:
        """How many times larger the output is than the input along each spatial axis (1s: same size)."""
        up = self.config.get("upsample")
        return tuple(int(f) for f in up["factors"]) if up else (1,) * self.ndim

    @property
    def receptive_radius(self) -> tuple[int, ...]:
        """Context per spatial axis, in input pixels, that can change one output pixel (see :class:`UNetConfig`).

        An upsampling model's U-Net runs on the interpolated input: its radius
        shrinks by the factor, and the interpolation reads two pixels more.
        """
        radius = UNetConfig.from_dict(self.config["unet"]).receptive_radius
        return tuple(r if f == 1 else -(-r // f) + 2 for r, f in zip(radius, self.factors))

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def input_range(self, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``lo, hi`` used to normalise ``sample`` (C, *spatial)."""
        return intensity.input_range(self.config["normalization"], sample)

    def output_range(self, in_lo: np.ndarray, in_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel ``lo, hi`` that map the network output back to pixel units."""
        return intensity.output_range(self.config["normalization"], in_lo, in_hi)


def build_model(kind: str, ndim: int, n_channels: int, depth: int = 2, filters: int = 32,
                extra: dict[str, Any] | None = None, n2v2: bool = False,
                factors: tuple[int, ...] | None = None) -> RestorationModel:
    """A fresh, untrained model of ``kind`` ('n2v' or 'care').

    ``n2v2`` picks the N2V2 network layout; ``factors`` (CARE) how many times
    larger the output is along each spatial axis. A stack upsampled along Z
    pools only in-plane: its Z is the coarse axis already.
    """
    if kind not in KINDS:
        raise UserError(f"unknown restoration model kind '{kind}'", f"use one of {', '.join(KINDS)}")
    spatial = "ZYX"[3 - ndim:]
    grown = upsample.factor_axes(factors or (), spatial)
    pool = (1, 2, 2) if grown == "Z" else None
    unet = default_unet(ndim, n_channels, depth, filters, n2v2, pool)
    residual = kind == "care"
    config = {"kind": kind, "version": VERSION, "unet": unet.to_dict(), "n_out": n_channels,
              "residual": residual, "axes": spatial, **(extra or {})}
    if grown:
        config["upsample"] = {"factors": [int(f) for f in factors], "axes": grown}
    return RestorationModel(RestorationNet(unet, n_channels, residual, factors if grown else None), config)


def net_from_config(config: dict[str, Any]) -> RestorationNet:
    """A fresh network of the shape that ``config`` describes (weights untrained)."""
    unet = UNetConfig.from_dict(config["unet"])
    up = config.get("upsample")
    return RestorationNet(unet, int(config.get("n_out", unet.in_channels)), bool(config.get("residual")),
                          tuple(up["factors"]) if up else None)


def save_restoration(model: RestorationModel, folder: str | Path) -> Path:
    """Write the model folder (config.json with normalisation and history + weights)."""
    return save_model_folder(Path(folder), model.config, model.net)


@reads_whole_folders
def load_restoration(folder: str | Path, device: torch.device | None = None) -> RestorationModel:
    """Load a Noise2Void or CARE model folder; other kinds are a clear error."""
    folder = Path(folder).expanduser()
    if not folder.exists() and (store_dir() / str(folder)).is_dir():
        folder = store_dir() / str(folder)
    if folder.is_file():
        raise UserError(f"'{folder.name}' is a file, not a model folder",
                        "pick the folder that holds config.json and weights.safetensors")
    config = read_config(folder)
    kind = config.get("kind")
    if kind not in KINDS:
        raise UserError(f"'{folder.name}' holds a {kind or 'unknown'} model, which cannot denoise or restore",
                        "pick a Noise2Void or CARE model folder, or train one")
    for key in ("unet", "normalization"):
        if key not in config:
            raise UserError(f"config.json in '{folder.name}' lacks '{key}'", "re-save or re-train the model")
    try:
        net = net_from_config(config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"config.json in '{folder.name}' describes a network this version cannot build ({exc})",
                        "update napari-dlmicro, or re-train the model") from None
    load_safetensors(net, folder)
    net.eval()
    return RestorationModel(net.to(device or torch.device("cpu")), config)


def predict_tile(model: RestorationModel, x: np.ndarray, use_channels_last: bool = True,
                 tta: bool = False, token: CancelToken = NEVER) -> np.ndarray:
    """Run the network on one normalised (C, *spatial) array; sizes must fit ``div_by``.

    ``tta`` averages the predictions of the eight flips and quarter turns of
    the YX plane, which lowers the residual noise. Every tile gets all eight,
    whatever its shape, so a pixel's output does not depend on how the image
    was cut into tiles or blocks.
    """
    device = model.device
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None].to(device)
    if use_channels_last and t.ndim == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    model.net.eval()
    net = model.net
    if model.runner is not None and model.runner.choice != TORCH:  # the one place another engine steps in
        net = lambda v: torch.from_numpy(model.runner(v.contiguous().cpu().numpy(), token)[0]).to(v.device)

    def compute() -> np.ndarray:
        with torch.inference_mode(), autocast(device), cancellable_forward(model.net, token):
            if not tta:
                out = net(t).float()
            else:
                acc, n = None, 0
                for k in range(4):
                    for flip in (False, True):
                        v = torch.rot90(t, k, dims=(-2, -1))
                        v = torch.flip(v, dims=(-1,)) if flip else v
                        y = net(v).float()
                        y = torch.flip(y, dims=(-1,)) if flip else y
                        y = torch.rot90(y, -k, dims=(-2, -1))
                        acc = y if acc is None else acc + y
                        n += 1
                out = acc / n
        return out[0].cpu().numpy()

    # one layer of a huge tile takes seconds on a CPU: at a cancel the caller goes on, the layer ends behind it
    return call_abandoning(compute, token=token)
