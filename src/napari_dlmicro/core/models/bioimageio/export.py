"""Export one of our models as a bioimage.io model package (model spec 0.5), built and validated with
``bioimageio.spec``.

The package holds the network three ways (ONNX, TorchScript and a torch state
dict with the architecture source it loads into, each with its sha256), a test
input made from the model's own data with the output our own code computes
for it, a cover, a README, the declared pre/postprocessing (StarDist's with the
spec's ``stardist_postprocessing``), and under ``config`` the training history
and provenance (``config.napari_dlmicro``) and, for StarDist, its thresholds and
configuration in StarDist's own words (``config.stardist``). The zip is written
atomically: a failed or cancelled export leaves nothing behind.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import torch
from bioimageio.spec import ValidationContext, save_bioimageio_package
from bioimageio.spec.model import v0_5

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.io.atomic import atomic_output
from napari_dlmicro.core.models.bioimageio import architecture
from napari_dlmicro.core.models.bioimageio.cover import write_cover
from napari_dlmicro.core.models.bioimageio.describe import Described, fit_test_input, percentile_normalised
from napari_dlmicro.core.models.bioimageio.describe_kinds import (
    describe_restoration,
    describe_semantic,
    describe_stardist,
    jsonable,
)
from napari_dlmicro.core.models.bioimageio.docs import readme
from napari_dlmicro.core.models.bioimageio.meta import (
    METHOD_CITATIONS,
    ExportMeta,
    check_name,
    default_name,
    resolved,
)
from napari_dlmicro.core.models.bioimageio.restorer import PackageRestorer
from napari_dlmicro.core.models.bioimageio.sample_input import choose_test_input
from napari_dlmicro.core.models.engines.onnx_export import OPSET, export_onnx
from napari_dlmicro.core.models.folder import CONFIG, read_config
from napari_dlmicro.core.models.loader import load_model, resolve
from napari_dlmicro.core.models.restoration.network import RestorationModel
from napari_dlmicro.core.models.semantic.segmenter import SemanticSegmenter
from napari_dlmicro.core.models.stardist.folder import KERAS_WEIGHTS, is_official_folder
from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
from napari_dlmicro.core.runtime.cancel import NEVER, CancelToken
from napari_dlmicro.core.runtime.events import Job, Notice, ProgressClock
from napari_dlmicro.core.version import __version__

LARGEST_2D = (256, 256)  # the test input is a central crop of at most this, to keep packages and tests small
LARGEST_3D = (32, 128, 128)
STEPS = 7


def describe(model: Any, config: dict[str, Any] | None = None) -> Described:
    """What the exporter needs of a loaded model; models of other kinds are a clear error."""
    config = dict(config or {})
    if isinstance(model, PackageRestorer) or getattr(getattr(model, "info", None), "normalises", False):
        raise UserError(f"'{getattr(model, 'name', None) or model.info.name}' is a bioimage.io package already",
                        "share the package itself")
    source = getattr(getattr(model, "info", None), "source", "")
    if not config and source and (Path(source) / CONFIG).is_file() and not is_official_folder(Path(source)):
        config = read_config(Path(source))
    if isinstance(model, StarDistSegmenter):
        folder = Path(model.info.source) if model.info.source else None
        official = read_config(folder) if folder is not None and is_official_folder(folder) else None
        described = describe_stardist(model, _our_config(config or model.extra, "stardist"), official)
        if official is not None:
            described.attachments = _keras_attachments(folder)
        return described
    if isinstance(model, SemanticSegmenter):
        return describe_semantic(model, _our_config(config, "semantic"))
    if isinstance(model, RestorationModel):
        return describe_restoration(model, _our_config(config or model.config, model.kind))
    kind = getattr(getattr(model, "info", None), "kind", type(model).__name__)
    raise UserError(f"a {kind} model cannot be exported to bioimage.io yet",
                    "export a StarDist, semantic U-Net, Noise2Void or CARE model")


def _keras_attachments(folder: Path) -> dict[str, Path]:
    files = {"stardist_config.json": folder / CONFIG}
    weights = next((folder / w for w in KERAS_WEIGHTS if (folder / w).is_file()), None)
    if weights is not None:
        files["stardist_weights.h5"] = weights
    if (folder / "thresholds.json").is_file():
        files["stardist_thresholds.json"] = folder / "thresholds.json"
    return files


def _our_config(config: dict[str, Any], kind: str) -> dict[str, Any]:
    """``config.napari_dlmicro``: the model's own configuration, its history and provenance, and the export."""
    model = {k: v for k, v in config.items() if k not in ("history", "data", "training")}
    data = config.get("data") or {}
    provenance = {"pairs": list(data.get("pairs") or []), "images": list(data.get("images") or []),
                  "sources": [Path(str(s)).name for s in data.get("sources") or []]}
    return jsonable({"kind": kind, "exported_by": f"napari-dlmicro {__version__}",
                     "exported": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": model,
                     "training": config.get("training") or {}, "history": config.get("history") or [],
                     "provenance": provenance})


def _model_and_config(model: Any) -> tuple[Any, dict[str, Any], str]:
    """The loaded model, its folder's ``config.json`` (ours; empty otherwise) and its name."""
    if not isinstance(model, (str, Path)):
        name = getattr(getattr(model, "info", None), "name", "") or getattr(model, "config", {}).get("name", "")
        return model, {}, str(name or "model")
    loaded = load_model(model, torch.device("cpu"))
    target = resolve(model)
    folder = Path(getattr(getattr(loaded, "info", None), "source", "") or str(target))
    config = read_config(folder) if (folder / CONFIG).is_file() and not is_official_folder(folder) else {}
    name = getattr(getattr(loaded, "info", None), "name", "") or config.get("name") or folder.name
    return loaded, config, str(name)


def _write_weights(d: Described, example: torch.Tensor, tmp: Path) -> dict[str, Path]:
    """The three weight files and the architecture source, written into ``tmp``."""
    files = {"source": tmp / architecture.FILE_NAME, "state": tmp / "weights.pt",
             "torchscript": tmp / "weights_torchscript.pt", "onnx": tmp / "weights.onnx"}
    files["source"].write_text(architecture.architecture_source())
    torch.save({k: v.detach().cpu().contiguous() for k, v in d.net.state_dict().items()}, files["state"])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes read as Python numbers
        torch.jit.save(torch.jit.trace(d.net, example, check_trace=False), str(files["torchscript"]))
    export_onnx(d.net, example, files["onnx"], ["output"], channels_last_output=d.family == "stardist")
    return files


def _weights(d: Described, files: dict[str, Path], authors: list[v0_5.Author]) -> v0_5.WeightsDescr:
    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    arch = v0_5.ArchitectureFromFileDescr(source=files["source"], callable=v0_5.Identifier(architecture.CALLABLE),
                                          kwargs=d.kwargs)
    return v0_5.WeightsDescr(
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(source=files["state"], architecture=arch,
                                                             pytorch_version=torch_version, authors=authors),
        torchscript=v0_5.TorchscriptWeightsDescr(source=files["torchscript"], pytorch_version=torch_version,
                                                 parent="pytorch_state_dict", authors=authors),
        onnx=v0_5.OnnxWeightsDescr(source=files["onnx"], opset_version=OPSET, parent="pytorch_state_dict",
                                   authors=authors))


def _licence(text: str) -> v0_5.LicenseId:
    try:
        return v0_5.LicenseId(text)
    except (ValueError, pydantic.ValidationError):
        raise UserError(f"'{text}' is not a licence bioimage.io knows (an SPDX identifier)",
                        "use e.g. CC-BY-4.0, MIT, BSD-3-Clause or Apache-2.0") from None


def _config(d: Described) -> v0_5.Config:
    values: dict[str, Any] = {"napari_dlmicro": d.config}
    if d.stardist_config is not None:
        values["stardist"] = {**d.stardist_config, **({"weights": "stardist_weights.h5"}
                                                      if "stardist_weights.h5" in d.attachments else {})}
    return v0_5.Config(**values)


def export_job(model: Any, out: str | Path, meta: ExportMeta = ExportMeta(), test_image: Any = None,
               test_axes: str | None = None, token: CancelToken = NEVER) -> Job:
    """Write ``model`` (a loaded model, or anything ``-m`` names) as a bioimage.io package ``out`` (.zip).

    ``test_image`` (array or file; axes ``test_axes``) gives the test input; by
    default the model's own training data, else StarDist's sample images.
    Yields progress; returns the path of the package.
    """
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UserError(f"'{out.name}' does not end in .zip", "give the package a name ending in .zip")
    if out.is_dir():
        raise UserError(f"'{out}' is a folder", "give a file name ending in .zip")
    clock = ProgressClock(STEPS, "exporting")
    meta = resolved(meta)
    licence = _licence(meta.licence)
    yield clock.tick(0, "loading the model")
    loaded, config, model_name = _model_and_config(model)
    d = describe(loaded, config)
    name = check_name(meta.name) if meta.name else default_name(model_name, d.title)
    image, origin = choose_test_input(test_image, test_axes, config or d.config, d.ndim, d.n_channels)
    largest = LARGEST_3D if d.ndim == 3 else LARGEST_2D
    raw = fit_test_input(image, d.sizes, d.div_by, largest)[None]
    yield Notice(f"test tensors made from {origin}")
    token.check()
    yield clock.tick(1, "computing the test output")
    output = d.reference(raw)
    token.check()
    views = int(loaded.default_views) if isinstance(loaded, StarDistSegmenter) else 1
    with tempfile.TemporaryDirectory(prefix="dlmicro-export-") as tmp_name:
        tmp = Path(tmp_name)
        np.save(tmp / "test_input.npy", raw)
        np.save(tmp / "test_output.npy", output)
        yield clock.tick(2, "writing the weights (state dict, TorchScript, ONNX)")
        example = torch.from_numpy(percentile_normalised(raw[0], 1.0, 99.8)[None])  # what tracing runs on
        files = _write_weights(d, example, tmp)
        token.check()
        yield clock.tick(4, "cover and documentation")
        cover = write_cover(tmp / "cover.png", raw[0], *d.cover_output(output), d.ndim)
        (tmp / "README.md").write_text(readme(d, ExportMeta(name, meta.description, meta.authors, meta.licence,
                                                            meta.citations), views))
        for target, source in d.attachments.items():
            shutil.copyfile(source, tmp / target)
        yield clock.tick(5, "building and validating the description")
        descr = _build(d, meta, name, licence, tmp, files, cover, views)
        token.check()
        yield clock.tick(6, "writing the package")
        package = save_bioimageio_package(descr, output_path=tmp / "package.zip")
        with atomic_output(out) as part:
            shutil.copyfile(package, part)
    yield clock.tick(STEPS, f"exported to {out.name}")
    return out


def _build(d: Described, meta: ExportMeta, name: str, licence, tmp: Path, files: dict[str, Path], cover: Path,
           views: int) -> v0_5.ModelDescr:
    authors = [v0_5.Author(name=a) for a in meta.authors]
    cites = [v0_5.CiteEntry(text=c.text, doi=c.doi, url=c.url) for c in METHOD_CITATIONS[d.citations_key]
             + tuple(meta.citations)]
    known = {str(c.url): None for c in meta.citations if c.url}  # no request to check a cited address
    d.config = {**d.config, "default_views": views}
    try:
        with ValidationContext(root=tmp, perform_io_checks=True, known_files=known):
            return v0_5.ModelDescr(
                format_version=v0_5.ModelDescr.implemented_format_version, type="model", name=name,
                description=meta.description or d.description, authors=authors, cite=cites,
                license=licence, tags=d.tags, documentation=v0_5.FileDescr(source=tmp / "README.md"),
                covers=[v0_5.FileDescr(source=cover)],
                inputs=[d.input_tensor(tmp / "test_input.npy")], outputs=[d.output_tensor(tmp / "test_output.npy")],
                weights=_weights(d, files, authors), config=_config(d),
                attachments=[v0_5.FileDescr(source=tmp / t) for t in d.attachments],
                version=v0_5.Version("1.0"))
    except pydantic.ValidationError as exc:  # our own description is wrong: a bug, shown in full
        raise RuntimeError(f"the bioimage.io description of {name} does not validate:\n{exc}") from None
