"""A bioimage.io package as one of our models: a StarDist or semantic segmenter, or a restorer.

- StarDist: a package whose output carries the spec's ``stardist_postprocessing``,
  or whose ``config.stardist`` names StarDist's Keras weights (as StarDist's own
  exports do). Keras weights load into our own torch network (our Keras loader),
  so they run on every engine; others run the package's weights.
- Semantic: outputs that end in ``softmax``, ``sigmoid`` or ``binarize``, or
  tagged as segmentation: a class per pixel.
- Restoration: any other image-to-image package.
Packages exported by napari-dlmicro say their kind in ``config.napari_dlmicro``.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from stardist.rays3d import Rays_GoldenSpiral

from napari_dlmicro.core.errors import UntrustedCode, UserError
from napari_dlmicro.core.models.bioimageio.adapter import PackageRunner
from napari_dlmicro.core.models.bioimageio.layout import read_layout
from napari_dlmicro.core.models.bioimageio.package import Package, open_package
from napari_dlmicro.core.models.bioimageio.restorer import PackageRestorer
from napari_dlmicro.core.models.bioimageio.segmenters import PackageSemantic, PackageStarDist
from napari_dlmicro.core.models.bioimageio.weights import PackageNet, choose_format, local_file
from napari_dlmicro.core.models.stardist.folder import net_config_from_official, rays_of
from napari_dlmicro.core.models.stardist.keras_weights import load_keras_weights
from napari_dlmicro.core.models.stardist.network import StarDistNet
from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter

SEGMENTATION_TAGS = {"segmentation", "semantic-segmentation", "binary-segmentation", "boundary-prediction"}
_CLASS_STEPS = {"softmax", "sigmoid", "binarize"}


def _ours(pkg: Package) -> dict[str, Any]:
    extra = pkg.descr.config.model_extra or {}
    value = extra.get("napari_dlmicro")
    return value if isinstance(value, dict) else {}


def _stardist_config(pkg: Package) -> dict[str, Any]:
    value = pkg.descr.config.stardist
    return value if isinstance(value, dict) else {}


def _stardist_post(pkg: Package):
    return next((p for p in pkg.descr.outputs[0].postprocessing if str(p.id) == "stardist_postprocessing"), None)


def family(pkg: Package) -> str:
    """``stardist``, ``semantic`` or ``restoration``: which of our paths runs the package."""
    kind = _ours(pkg).get("kind")
    if kind in ("stardist", "semantic"):
        return str(kind)
    if kind in ("n2v", "care"):
        return "restoration"
    if _stardist_post(pkg) is not None or _keras_stardist(pkg) is not None:
        return "stardist"
    steps = [str(p.id) for p in pkg.descr.outputs[0].postprocessing if str(p.id) != "ensure_dtype"]
    tags = {str(t).lower() for t in pkg.descr.tags}
    if (steps and steps[-1] in _CLASS_STEPS) or tags & SEGMENTATION_TAGS:
        return "semantic"
    return "restoration"


def kind_of_package(ref: str | Path) -> str:
    """The kind of ours the package runs as: stardist, semantic, n2v (our own Noise2Void packages) or care."""
    pkg = open_package(ref)
    f = family(pkg)
    if f == "restoration":
        return "n2v" if _ours(pkg).get("kind") == "n2v" else "care"
    return f


def _keras_stardist(pkg: Package) -> Path | None:
    """StarDist's Keras weights in the package (``config.stardist.weights`` or ``keras_hdf5``), if any."""
    sd = _stardist_config(pkg)
    if not isinstance(sd.get("config"), dict):
        return None
    if sd.get("weights"):
        path = (pkg.root / str(sd["weights"])).resolve()
        if path.is_relative_to(pkg.root.resolve()) and path.is_file():
            return path
    entry = pkg.descr.weights.keras_hdf5
    return local_file(pkg, entry, "keras_hdf5 weights") if entry is not None else None


def _from_keras(pkg: Package, weights: Path, device: torch.device) -> StarDistSegmenter:
    sd = _stardist_config(pkg)
    cfg = sd["config"]
    net = StarDistNet(net_config_from_official(cfg))
    load_keras_weights(net, weights, prefix=cfg.get("unet_prefix", "") or "")
    thresholds = sd.get("thresholds") or {}
    return StarDistSegmenter(net, name=pkg.name, source=str(pkg.root), prob_thresh=float(thresholds.get("prob", 0.5)),
                             nms_thresh=float(thresholds.get("nms", 0.4)),
                             rays=rays_of(cfg) if net.config.ndim == 3 else None, device=device)


def code_needing_trust(ref: str | Path) -> UntrustedCode | None:
    """What loading the package ``ref`` would ask the user to trust (its architecture source), or None.

    None when the package runs without code of its own (ONNX, TorchScript, or
    StarDist's Keras weights through our loader); a package that cannot run
    here at all raises its :class:`UserError`.
    """
    pkg = open_package(ref)
    if family(pkg) == "stardist" and _keras_stardist(pkg) is not None:
        return None
    try:
        choose_format(pkg, trust_code=False)
    except UntrustedCode as needed:
        return needed
    return None


def load_package(ref: str | Path, device: torch.device | None = None, trust_code: bool = False,
                 engine: str | None = None):
    """The package ``ref`` names as a segmenter (StarDist, semantic) or a :class:`.restorer.PackageRestorer`."""
    pkg = open_package(ref)
    descr = pkg.descr
    if len(descr.inputs) != 1:
        raise UserError(f"'{pkg.name}' takes {len(descr.inputs)} input tensors", "use a model with one input image")
    f = family(pkg)
    if f == "stardist":
        keras = _keras_stardist(pkg)
        if keras is not None:
            return _from_keras(pkg, keras, device or torch.device("cpu"))
    inp = read_layout(descr.inputs[0])
    out = read_layout(descr.outputs[0], {str(t.id): t for t in descr.inputs})
    pre = list(descr.inputs[0].preprocessing)
    post = list(descr.outputs[0].postprocessing)
    net = PackageNet(pkg, trust_code, engine)
    source = str(ref)
    if f == "stardist":
        sd_post = _stardist_post(pkg)
        if sd_post is None:
            raise UserError(f"'{pkg.name}' is a StarDist model without StarDist's Keras weights or postprocessing",
                            "use a package exported by StarDist or napari-dlmicro")
        rays = None
        if out.ndim == 3 or len(sd_post.kwargs.grid) == 3:
            rays = Rays_GoldenSpiral(int(sd_post.kwargs.n_rays), anisotropy=tuple(sd_post.kwargs.anisotropy))
        runner = PackageRunner(net, inp, _raw_output(descr, out))
        views = int(_ours(pkg).get("default_views", 1) or 1)
        return PackageStarDist(runner, inp, pre, sd_post.kwargs, name=pkg.name, source=source, views=views, rays=rays)
    if f == "semantic":
        runner = PackageRunner(net, inp, out, [p for p in post if str(p.id) in _CLASS_STEPS])
        return PackageSemantic(runner, inp, pre, max(2, int(out.n_channels or 1) + (out.n_channels == 1)),
                               name=pkg.name, source=source)
    kind = "n2v" if _ours(pkg).get("kind") == "n2v" else "care"
    return PackageRestorer(PackageRunner(net, inp, out), inp, pre, post, name=pkg.name, source=source, kind=kind)


def _raw_output(descr, out):
    """The layout of StarDist's raw network output: the described labels' axes, channel axis 1 + rays wide."""
    post = next(p for p in descr.outputs[0].postprocessing if str(p.id) == "stardist_postprocessing")
    return replace(out, n_channels=int(post.kwargs.n_rays) + 1)
