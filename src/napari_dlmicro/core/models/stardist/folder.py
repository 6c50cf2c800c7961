"""StarDist model folders: official Keras ones, and our own torch ones.

An official folder (as StarDist's Python package writes it) has
``config.json``, ``thresholds.json`` and ``weights_best.h5``. Ours has
``config.json`` (``"kind": "stardist"``) and ``weights.safetensors``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from stardist import rays3d

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import reads_whole_folders
from napari_dlmicro.core.models.catalogue import CATALOGUE, fetch_pretrained
from napari_dlmicro.core.models.folder import load_safetensors, read_config, save_model_folder
from napari_dlmicro.core.models.stardist.keras_weights import load_keras_weights
from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
from napari_dlmicro.core.models.stardist.segmenter import BORDER, StarDistSegmenter
from napari_dlmicro.core.nets.unet import UNetConfig

KERAS_WEIGHTS = ("weights_best.h5", "weights_last.h5")


def is_official_folder(folder: Path) -> bool:
    """True for a folder that StarDist's own (Keras) package saved."""
    return (folder / "config.json").is_file() and any((folder / w).is_file() for w in KERAS_WEIGHTS)


def net_config_from_official(cfg: dict[str, Any]) -> StarDistNetConfig:
    """Our network description from an official StarDist ``config.json``."""
    try:
        ndim = int(cfg["n_dim"])
        if cfg.get("n_classes"):
            raise UserError("multi-class StarDist models are not supported yet", "use a single-class StarDist model")
        if cfg.get("unet_batch_norm") or cfg.get("resnet_batch_norm"):
            raise UserError("StarDist models trained with batch normalisation are not supported yet",
                            "use a model trained without batch norm (all official ones are)")
        unet = UNetConfig(
            ndim=ndim,
            depth=int(cfg.get("unet_n_depth", 3)),
            filters=int(cfg.get("unet_n_filter_base", 32)),
            kernel=tuple(cfg.get("unet_kernel_size", (3,) * ndim)),
            n_conv=int(cfg.get("unet_n_conv_per_depth", 2)),
            pool=tuple(cfg.get("unet_pool", (2,) * ndim)),
            act=cfg.get("unet_activation", "relu"),
            last_act=cfg.get("unet_last_activation", "relu") or cfg.get("unet_activation", "relu"),
        )
        backbone = cfg.get("backbone", "unet")
        return StarDistNetConfig(
            ndim=ndim,
            n_channels=int(cfg.get("n_channel_in", 1)),
            n_rays=int(cfg["n_rays"]),
            grid=tuple(int(g) for g in cfg.get("grid", (1,) * ndim)),
            backbone=backbone,
            unet=unet,
            conv_after=int(cfg.get("net_conv_after_unet" if backbone == "unet" else "net_conv_after_resnet", 128)),
            resnet_blocks=int(cfg.get("resnet_n_blocks", 4)),
            resnet_filters=int(cfg.get("resnet_n_filter_base", 32)),
            resnet_kernel=tuple(cfg.get("resnet_kernel_size", (3,) * ndim)),
            resnet_n_conv=int(cfg.get("resnet_n_conv_per_block", 3)),
            resnet_act=cfg.get("resnet_activation", "relu"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"the StarDist config.json is incomplete or malformed ({exc})",
                        "use the config.json that was saved with the model") from None


def rays_of(cfg: dict[str, Any]):
    """The rays of a 3D config, built by name from stardist's ray classes.

    (stardist's own ``rays_from_json`` evaluates the name as Python, which a config
    from a download must never get to do.)
    """
    rays = cfg.get("rays_json")
    if not isinstance(rays, dict):
        raise UserError("this 3D StarDist config has no 'rays_json' entry", "use the config.json saved with the model")
    name, kwargs = rays.get("name"), rays.get("kwargs") or {}
    known = {n for n in dir(rays3d) if n.startswith("Rays_") and n != "Rays_Base"}
    if name not in known or not isinstance(kwargs, dict):
        raise UserError(f"this 3D StarDist config names rays '{name}', which StarDist does not define",
                        f"use a config.json whose rays are one of {', '.join(sorted(known))}")
    try:
        return getattr(rays3d, name)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"the rays of this 3D StarDist config are malformed ({exc})",
                        "use the config.json saved with the model") from None


def load_official(folder: Path, device: torch.device, name: str | None = None) -> StarDistSegmenter:
    """Load an official StarDist (Keras) folder into our torch network."""
    cfg = read_config(folder)
    net = StarDistNet(net_config_from_official(cfg))
    weights = next(folder / w for w in KERAS_WEIGHTS if (folder / w).is_file())
    load_keras_weights(net, weights, prefix=cfg.get("unet_prefix", "") or "")
    thresholds = {}
    if (folder / "thresholds.json").is_file():
        thresholds = json.loads((folder / "thresholds.json").read_text())
    return StarDistSegmenter(
        net,
        name=name or folder.name,
        source=str(folder),
        prob_thresh=float(thresholds.get("prob", 0.5)),
        nms_thresh=float(thresholds.get("nms", 0.4)),
        rays=rays_of(cfg) if net.config.ndim == 3 else None,
        device=device,
        extra={"axes": cfg.get("axes")},
    )


def load_ours(folder: Path, device: torch.device, cfg: dict | None = None) -> StarDistSegmenter:
    """Load one of our StarDist model folders."""
    cfg = cfg or read_config(folder)
    try:
        net = StarDistNet(StarDistNetConfig.from_dict(cfg["net"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"the config.json in {folder.name} does not describe a StarDist network ({exc})",
                        "re-save the model, or pick the folder it was trained into") from None
    load_safetensors(net, folder)
    th = cfg.get("thresholds", {})
    return StarDistSegmenter(
        net,
        name=cfg.get("name", folder.name),
        source=str(folder),
        prob_thresh=float(th.get("prob", 0.5)),
        nms_thresh=float(th.get("nms", 0.4)),
        rays=rays_of(cfg) if net.config.ndim == 3 else None,
        device=device,
        extra=cfg,
        seed_border=int(cfg.get("seed_border", BORDER)),  # saved before it was a setting: StarDist's
        views=int(cfg.get("views", 1)),
    )


def save_stardist(model: StarDistSegmenter, folder: Path, **meta: Any) -> Path:
    """Save ``model`` as one of our folders (config.json + weights.safetensors)."""
    s = model.default_settings()
    cfg = {
        "kind": "stardist",
        "name": meta.pop("name", model.info.name),
        "net": model.net.config.to_dict(),
        "thresholds": {"prob": s["prob_thresh"], "nms": s["nms_thresh"]},
        "axes": "ZYXC" if model.net.config.ndim == 3 else "YXC",
        "seed_border": model.seed_border,
        "views": model.default_views,
        **meta,
    }
    if model.rays is not None:
        cfg["rays_json"] = model.rays.to_json()
    return save_model_folder(folder, cfg, model.net)


@reads_whole_folders
def load_stardist(ref: str | Path, device: torch.device) -> StarDistSegmenter:
    """A StarDist model from a catalogue name (downloaded on first use), an official folder or one of ours."""
    entry = CATALOGUE.get(str(ref))
    if entry is not None:
        return load_official(fetch_pretrained(entry), device, name=entry.name)
    folder = Path(ref)
    return load_official(folder, device) if is_official_folder(folder) else load_ours(folder, device)


def stardist_defaults(folder: Path) -> dict[str, float]:
    """The thresholds (and views) a StarDist folder segments with, read from its files alone."""
    folder = Path(folder)
    if is_official_folder(folder):
        th = json.loads((folder / "thresholds.json").read_text()) if (folder / "thresholds.json").is_file() else {}
        return {"prob_thresh": float(th.get("prob", 0.5)), "nms_thresh": float(th.get("nms", 0.4)), "views": 1}
    cfg = read_config(folder)
    th = cfg.get("thresholds", {})
    return {"prob_thresh": float(th.get("prob", 0.5)), "nms_thresh": float(th.get("nms", 0.4)),
            "views": int(cfg.get("views", 1))}
