"""Running a package's weights: which format, checked against its sha256, and a call on numpy arrays.

Formats are tried in this order: ``onnx`` (ONNX Runtime, or OpenVINO when that
engine is asked for), ``torchscript``, ``tensorflow_saved_model_bundle`` (where
TensorFlow is installed), then ``pytorch_state_dict``. That last one builds the
network with Python source from the package, and running it is running a
stranger's program: it is used only when no other format of the package runs
here, and only with ``trust_code`` (the dock asks; the CLI's ``--trust-code``); without it
the package is refused with :class:`...errors.UntrustedCode`, which names the file and its sha256.
Its weights load with ``torch.load(weights_only=True)``. ``keras_hdf5`` weights
of StarDist run through our own Keras loader (:mod:`.load`).
"""
from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bioimageio.spec.utils import get_sha256

from napari_dlmicro.core.errors import UntrustedCode, UserError
from napari_dlmicro.core.models.bioimageio.package import Package, check_members
from napari_dlmicro.core.models.engines.backends import backend
from napari_dlmicro.core.models.engines.choice import ONNXRUNTIME, OPENVINO, TORCH, installed

ORDER = ("onnx", "torchscript", "tensorflow_saved_model_bundle", "pytorch_state_dict")
NEEDS = {"tensorflow_saved_model_bundle": "tensorflow", "keras_hdf5": "tensorflow",
         "keras_v3": "keras", "tensorflow_js": "a JavaScript runtime (TensorFlow.js)"}


def local_file(pkg: Package, entry: Any, what: str) -> Path:
    """The file of ``entry`` (a weights or architecture description) in the package, its sha256 checked."""
    source = getattr(entry, "source", None)
    text = str(getattr(source, "path", source) or "")
    if "://" in text:
        raise UserError(f"the {what} of '{pkg.name}' are not in the package but at {text}",
                        "download the complete package (its zip), then open that")
    path = (pkg.root / text).resolve()
    if not path.is_relative_to(pkg.root.resolve()):
        raise UserError(f"the {what} of '{pkg.name}' point outside the package ({text})", "do not use this package")
    if not path.is_file():
        raise UserError(f"the {what} of '{pkg.name}' are missing ({text} is not in the package)",
                        "download the complete package again")
    expected = getattr(entry, "sha256", None)
    if expected is not None and str(get_sha256(path)) != str(expected):
        raise UserError(f"the {what} of '{pkg.name}' are damaged or were replaced ({text}: its sha256 does not "
                        "match the one the package declares)", "download the package again from its source")
    return path


def formats(pkg: Package) -> list[str]:
    """The weight formats the package carries."""
    return [name for name, entry in pkg.descr.weights if entry is not None]


def tensorflow_installed() -> bool:
    """True where TensorFlow imports (it runs ``tensorflow_saved_model_bundle`` weights)."""
    return importlib.util.find_spec("tensorflow") is not None


def choose_format(pkg: Package, trust_code: bool, allowed: tuple[str, ...] = ORDER) -> str:
    """The weight format to run: the first of :data:`ORDER` the package has and this machine runs."""
    have = formats(pkg)
    runnable = [f for f in allowed if f in have and (f != "tensorflow_saved_model_bundle" or tensorflow_installed())]
    safe = [f for f in runnable if f != "pytorch_state_dict"]
    if safe:
        return safe[0]
    if "pytorch_state_dict" in runnable:
        if not trust_code:
            raise code_to_trust(pkg)
        return "pytorch_state_dict"
    missing = sorted({NEEDS[f] for f in have if f in NEEDS})
    raise UserError(f"'{pkg.name}' has weights as {', '.join(have) or 'nothing'}, which this machine cannot run",
                    f"install {' and '.join(missing)}" if missing else
                    "ask its authors for ONNX, TorchScript or PyTorch weights")


def code_to_trust(pkg: Package) -> UntrustedCode:
    """What the user is asked to trust before ``pkg``'s state dict weights run: its architecture source and hash.

    The file is checked against the sha256 the package declares (a damaged or
    replaced file is refused here, before anyone is asked about it).
    """
    arch = pkg.descr.weights.pytorch_state_dict.architecture
    if hasattr(arch, "import_from"):  # a callable of an installed library: no file of the package runs
        return UntrustedCode(pkg.name, f"{arch.import_from}.{arch.callable}", None)
    source = local_file(pkg, arch, "architecture source")
    return UntrustedCode(pkg.name, source.relative_to(pkg.root.resolve()).as_posix(), str(get_sha256(source)))


class PackageNet:
    """The package's network on numpy arrays in its own input axes order; outputs in its output axes order."""

    def __init__(self, pkg: Package, trust_code: bool = False, engine: str | None = None) -> None:
        self.pkg = pkg
        self.format = choose_format(pkg, trust_code)
        entry = getattr(pkg.descr.weights, self.format)
        path = local_file(pkg, entry, f"{self.format} weights")
        self.engine = TORCH
        if self.format == "onnx":
            self.engine = OPENVINO if engine == OPENVINO and installed(OPENVINO) else ONNXRUNTIME
            self._path = path
        elif self.format == "torchscript":
            self._module = torch.jit.load(str(path), map_location="cpu").eval()
        elif self.format == "pytorch_state_dict":
            self._module = _state_dict_network(pkg, entry, path)
        else:
            self.engine = "tensorflow"
            self._tf = _saved_model(pkg, path)

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """The outputs for one input array (float32)."""
        x = np.ascontiguousarray(x, np.float32)
        if self.format == "onnx":
            return backend(self.engine, self._path, torch.get_num_threads()).run(x)
        if self.format in ("torchscript", "pytorch_state_dict"):
            with torch.inference_mode():
                out = self._module(torch.from_numpy(x))
            outs = out if isinstance(out, (tuple, list)) else [out]
            return [o.float().cpu().numpy() for o in outs]
        result = self._tf(x)
        return [np.asarray(v, np.float32) for v in result]


def _state_dict_network(pkg: Package, entry: Any, weights: Path) -> torch.nn.Module:
    """The package's network, built by its own architecture (after the user trusted it); weights checked."""
    arch = entry.architecture
    kwargs = dict(arch.kwargs or {})
    if hasattr(arch, "import_from"):  # a callable of an installed library
        module = importlib.import_module(str(arch.import_from))
    else:
        source = local_file(pkg, arch, "architecture source")
        name = f"_bioimageio_architecture_{abs(hash(str(source)))}"
        spec = importlib.util.spec_from_file_location(name, source)
        if spec is None or spec.loader is None:
            raise UserError(f"the architecture source of '{pkg.name}' cannot be imported", "check the package")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses of the source look their module up here
        spec.loader.exec_module(module)
    build = getattr(module, str(arch.callable), None)
    if build is None:
        raise UserError(f"the architecture of '{pkg.name}' names '{arch.callable}', which its source lacks",
                        "check the package")
    net = build(**kwargs)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file that is not a plain state dict is refused, whatever the error
        raise UserError(f"the torch weights of '{pkg.name}' are not a plain state dict ({type(exc).__name__})",
                        "ask for ONNX or TorchScript weights") from None
    try:
        net.load_state_dict(state, strict=bool(getattr(entry, "strict", True)))
    except RuntimeError as exc:
        raise UserError(f"the torch weights of '{pkg.name}' do not fit its architecture ({str(exc)[:200]})",
                        "check the package") from None
    return net.eval()


def _saved_model(pkg: Package, path: Path):
    import tensorflow as tf  # heavy and optional: only for packages whose only weights are a TF SavedModel

    folder = path
    if zipfile.is_zipfile(path):
        folder = path.with_name(path.stem + "_unzipped")
        if not folder.is_dir():
            with zipfile.ZipFile(path) as z:
                check_members(z, path.name)
                z.extractall(folder)
    model = tf.saved_model.load(str(folder))
    signature = model.signatures["serving_default"]
    names = sorted(signature.structured_outputs)

    arg = next(iter(signature.structured_input_signature[1]))

    def run(x: np.ndarray) -> list[np.ndarray]:
        out = signature(**{arg: tf.convert_to_tensor(x)})
        return [out[n].numpy() for n in names]

    return run
