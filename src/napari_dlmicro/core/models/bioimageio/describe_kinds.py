"""Each kind we export, as :class:`.describe.Described`: StarDist, the semantic U-Net, Noise2Void and CARE.

Test outputs are computed by our own prediction code (the segmenter's labels,
the restoration predictor), so the package's test checks that its declared
pipeline reproduces what napari-dlmicro does with the same weights.
"""
from __future__ import annotations

import copy
import importlib.metadata
import json
from typing import Any

import numpy as np
import torch
from bioimageio.spec.model import v0_5
from stardist.matching import relabel_sequential

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.bioimageio.describe import (
    Described,
    channel_names,
    percentile_normalised,
    scale_range,
)
from napari_dlmicro.core.models.bioimageio.entry import StarDistProbDist
from napari_dlmicro.core.models.restoration import intensity
from napari_dlmicro.core.models.restoration.network import RestorationModel
from napari_dlmicro.core.models.restoration.predict import predict_sample
from napari_dlmicro.core.models.semantic.segmenter import SemanticSegmenter
from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
from napari_dlmicro.core.nets.unet import UNetConfig
from napari_dlmicro.core.runtime.cancel import NEVER
from napari_dlmicro.core.runtime.events import run_to_end

LOW, HIGH = 1.0, 99.8  # the percentiles our jobs normalise with (and trained with)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON values (tuples as lists, numpy numbers as numbers)."""
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _on_multiples(radius: tuple[int, ...], div: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(max(d, -(-r // d) * d) for r, d in zip(radius, div))


class StarDistDescribed(Described):
    """StarDist 2D/3D: the probability and distances tensor, then the spec's StarDist postprocessing."""

    segmenter: StarDistSegmenter

    def output_tensor(self, test_file):
        s = self.segmenter.default_settings()
        c = self.segmenter.net.config
        common = dict(prob_threshold=float(s["prob_thresh"]), nms_threshold=float(s["nms_thresh"]),
                      n_rays=int(c.n_rays), grid=tuple(int(g) for g in c.grid), b=int(self.segmenter.seed_border))
        if c.ndim == 2:
            kwargs = v0_5.StardistPostprocessingKwargs2D(**common)
        else:
            kwargs = v0_5.StardistPostprocessingKwargs3D(**common, anisotropy=_anisotropy(self.segmenter))
        return v0_5.OutputTensorDescr(
            id=v0_5.TensorId("labels"), description="object labels (0: background)",
            axes=[v0_5.BatchAxis(), *self.space_output_axes(), v0_5.ChannelAxis(channel_names=["labels"])],
            test_tensor=v0_5.FileDescr(source=test_file), data=v0_5.IntervalOrRatioDataDescr(type="int32"),
            postprocessing=[v0_5.StardistPostprocessingDescr(kwargs=kwargs),
                            v0_5.EnsureDtypeDescr(kwargs=v0_5.EnsureDtypeKwargs(dtype="int32"))])

    def reference(self, raw):
        x = np.moveaxis(percentile_normalised(raw[0], LOW, HIGH), 0, -1)
        settings = {**self.segmenter.default_settings(), "views": 1}
        labels = run_to_end(self.segmenter.segment(x, settings, NEVER, tile=None)).astype(np.int32)
        if self.ndim == 3:  # the spec's 3D postprocessing numbers its objects 1..N
            labels = relabel_sequential(labels)[0].astype(np.int32)
        return labels[None, ..., None]

    def cover_output(self, output):
        return output[0, ..., 0], "labels"


def _anisotropy(model: StarDistSegmenter) -> tuple[float, float, float]:
    rays = model.rays.to_json() if model.rays is not None else {}
    if rays.get("name") != "Rays_GoldenSpiral":
        raise UserError(f"{model.info.name} casts its rays as {rays.get('name')}, and the bioimage.io StarDist "
                        "postprocessing knows golden-spiral rays only", "export a model trained with golden-spiral "
                        "rays (StarDist's default)")
    return tuple(float(a) for a in (rays.get("kwargs", {}).get("anisotropy") or (1.0, 1.0, 1.0)))


def stardist_style_config(model: StarDistSegmenter) -> dict[str, Any]:
    """The network in the words of StarDist's own ``config.json`` (``Config2D``/``Config3D`` keys)."""
    c = model.net.config
    u = c.unet
    out: dict[str, Any] = {
        "n_dim": c.ndim, "axes": "ZYXC" if c.ndim == 3 else "YXC", "n_channel_in": c.n_channels, "n_channel_out":
        1 + c.n_rays, "n_rays": c.n_rays, "grid": list(c.grid), "backbone": c.backbone, "n_classes": None,
        "unet_n_depth": u.depth, "unet_n_filter_base": u.filters, "unet_kernel_size": _per_axis(u.kernel, c.ndim),
        "unet_n_conv_per_depth": u.n_conv, "unet_pool": list(u.pool), "unet_activation": u.act,
        "unet_last_activation": u.last_act, "unet_batch_norm": u.batch_norm, "net_conv_after_unet": c.conv_after,
    }
    if c.backbone == "resnet":
        out.update({"resnet_n_blocks": c.resnet_blocks, "resnet_n_filter_base": c.resnet_filters,
                    "resnet_kernel_size": _per_axis(c.resnet_kernel, c.ndim), "resnet_n_conv_per_block":
                    c.resnet_n_conv, "resnet_activation": c.resnet_act, "net_conv_after_resnet": c.conv_after})
    if model.rays is not None:
        out["rays_json"] = model.rays.to_json()
    return jsonable(out)


def _per_axis(k, ndim: int) -> list[int]:
    return list(k) if isinstance(k, (tuple, list)) else [int(k)] * ndim


def describe_stardist(model: StarDistSegmenter, config: dict[str, Any], official: dict[str, Any] | None,
                      ) -> StarDistDescribed:
    """A StarDist model (ours, or an official folder: ``official`` is its ``config.json``)."""
    c = model.net.config
    net = StarDistProbDist(c)
    net.load_state_dict(copy.deepcopy(model.net.state_dict()))
    s = model.default_settings()
    d = StarDistDescribed(
        family="stardist", kind="stardist", title=f"StarDist {c.ndim}D", net=net.cpu().eval(),
        kwargs={"kind": "stardist", "config": jsonable(c.to_dict())}, ndim=c.ndim, n_channels=c.n_channels,
        div_by=tuple(c.div_by), halo=tuple(model.margin), preprocessing=[scale_range(c.ndim, LOW, HIGH)],
        citations_key=f"stardist{c.ndim}d",
        tags=["stardist", "instance-segmentation", "nuclei", f"{c.ndim}d", "pytorch", "onnx", "napari-dlmicro"],
        description=f"StarDist {c.ndim}D instance segmentation of star-convex objects ({c.n_rays} rays), "
                    "trained or converted with napari-dlmicro",
        config=config,
        stardist_config={"stardist_version": importlib.metadata.version("stardist"),
                         "thresholds": {"prob": float(s["prob_thresh"]), "nms": float(s["nms_thresh"])},
                         "config": jsonable(official) if official else stardist_style_config(model)},
    )
    d.segmenter = model
    return d


class SemanticDescribed(Described):
    """A semantic U-Net: class probabilities (softmax over the channel axis)."""

    n_classes: int

    def output_tensor(self, test_file):
        names = ["background"] + [f"class{k}" for k in range(1, self.n_classes)]
        return v0_5.OutputTensorDescr(
            id=v0_5.TensorId("probabilities"), description="probability of each class (channel 0: background)",
            axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=names), *self.space_output_axes()],
            test_tensor=v0_5.FileDescr(source=test_file),
            data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
            postprocessing=[v0_5.SoftmaxDescr(kwargs=v0_5.SoftmaxKwargs(axis=v0_5.AxisId("channel")))])

    def reference(self, raw):
        x = percentile_normalised(raw[0], LOW, HIGH)
        with torch.inference_mode():
            logits = self.net(torch.from_numpy(x[None]))
        return torch.softmax(logits, 1).numpy().astype(np.float32)

    def cover_output(self, output):
        return output[0].argmax(0).astype(np.uint8), "classes"


def describe_semantic(model: SemanticSegmenter, config: dict[str, Any]) -> SemanticDescribed:
    """A semantic U-Net segmenter."""
    unet, n = model.net.unet_config, model.n_classes
    net = copy.deepcopy(model.net).cpu().eval()
    d = SemanticDescribed(
        family="semantic", kind="semantic", title="Semantic U-Net", net=net,
        kwargs={"kind": "semantic", "config": {"unet": jsonable(unet.to_dict()), "n_classes": n}}, ndim=unet.ndim,
        n_channels=unet.in_channels, div_by=tuple(unet.div_by), halo=tuple(model.margin),
        preprocessing=[scale_range(unet.ndim, LOW, HIGH)], citations_key="semantic",
        tags=["semantic-segmentation", "unet", f"{unet.ndim}d", "pytorch", "onnx", "napari-dlmicro"],
        description=f"U-Net giving every pixel one of {n} classes (0: background), trained with napari-dlmicro",
        config=config)
    d.n_classes = n
    return d


class RestorationDescribed(Described):
    """Noise2Void or CARE: an image in, the restored image out, in the input's units."""

    model: RestorationModel
    test_input: np.ndarray | None = None  # set by reference(): the raw test sample (C, *spatial)

    def output_tensor(self, test_file):
        lo, hi = _output_range(self.model, self.test_input)
        return v0_5.OutputTensorDescr(
            id=v0_5.TensorId("restored"), description="the restored image, in the input's units",
            axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=channel_names(self.model.config.get(
                "n_out", self.n_channels))), *self.space_output_axes()],
            test_tensor=v0_5.FileDescr(source=test_file), data=v0_5.IntervalOrRatioDataDescr(type="float32"),
            postprocessing=[_scale_linear(gain=hi - lo, offset=lo)])

    def reference(self, raw):
        self.test_input = raw[0]
        out = run_to_end(predict_sample(self.model, raw[0], tile=None))
        return out[None].astype(np.float32)

    def cover_output(self, output):
        return output[0, 0] if output.shape[1] == 1 else np.moveaxis(output[0, :3], 0, -1), "image"


def _scale_linear(gain: np.ndarray, offset: np.ndarray) -> v0_5.ScaleLinearDescr:
    return v0_5.ScaleLinearDescr(kwargs=v0_5.ScaleLinearAlongAxisKwargs(
        axis=v0_5.AxisId("channel"), gain=[float(g) for g in gain], offset=[float(o) for o in offset]))


def _output_range(model: RestorationModel, test_input: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The output's range in the package: fixed, since bioimage.io's postprocessing cannot take it from the input.

    A CARE model in *relative* intensity takes its output range from each
    input's percentiles; the package fixes the range its test input gives, so
    it reproduces the test exactly and puts other images on that one scale.
    """
    norm = model.config["normalization"]
    if norm.get("target_in_input") is not None and test_input is not None:
        lo, hi = intensity.input_range(norm, np.asarray(test_input, np.float32))
        tlo, thi = intensity.output_range(norm, lo, hi)
        return np.asarray(tlo, np.float64), np.asarray(thi, np.float64)
    if norm.get("target") is not None:
        return np.asarray(norm["target"]["low"], np.float64), np.asarray(norm["target"]["high"], np.float64)
    return np.asarray(norm["input"]["low"], np.float64), np.asarray(norm["input"]["high"], np.float64)


def describe_restoration(model: RestorationModel, config: dict[str, Any]) -> RestorationDescribed:
    """A Noise2Void (N2V2) or CARE model."""
    unet = UNetConfig.from_dict(model.config["unet"])
    norm = model.config["normalization"]
    if norm.get("input_mode") == "per_image":
        low, high = (float(p) for p in norm.get("percentiles", (LOW, HIGH)))
        preprocessing = [scale_range(unet.ndim, low, high)]
    else:
        lo = np.asarray(norm["input"]["low"], np.float64)
        hi = np.asarray(norm["input"]["high"], np.float64)
        gain = 1.0 / (hi - lo + 1e-20)
        preprocessing = [_scale_linear(gain=gain, offset=-lo * gain)]
    n2v2 = unet.pool_mode == "blur" or not unet.top_skip
    kind = model.kind
    title = {"n2v": "Noise2Void" + (" (N2V2)" if n2v2 else ""), "care": "CARE"}[kind]
    net = copy.deepcopy(model.net).cpu().eval()
    n_out = int(model.config.get("n_out", unet.in_channels))
    d = RestorationDescribed(
        family="restoration", kind=kind, title=title, net=net,
        kwargs={"kind": "restoration", "config": {"unet": jsonable(unet.to_dict()), "n_out": n_out,
                                                  "residual": bool(model.net.residual)}},
        ndim=unet.ndim, n_channels=unet.in_channels, div_by=tuple(unet.div_by),
        halo=_on_multiples(unet.receptive_radius, unet.div_by), preprocessing=preprocessing,
        citations_key="n2v2" if kind == "n2v" and n2v2 else kind,
        tags=["denoising" if kind == "n2v" else "restoration", "n2v" if kind == "n2v" else "care", "unet",
              f"{unet.ndim}d", "pytorch", "onnx", "napari-dlmicro"],
        description=f"{title} image restoration ({unet.ndim}D), trained with napari-dlmicro", config=config)
    d.model = model
    return d
