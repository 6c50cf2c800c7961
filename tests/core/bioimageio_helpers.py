"""Helpers for the bioimage.io tests: export our test models, and take packages apart to break them."""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from bioimageio.spec.utils import get_sha256, read_yaml, write_yaml

from napari_dlmicro.core.jobs.export import export_model_job
from napari_dlmicro.core.models.bioimageio.meta import ExportMeta, parse_citation
from napari_dlmicro.core.runtime.events import run_to_end

META = ExportMeta(authors=("Ada Tester",), licence="MIT",
                  citations=(parse_citation("Tester et al., A test model, 2026 | 10.1234/test.5678"),))


def export(model, out: Path, test_image=None, **kwargs) -> Path:
    """``model`` exported to ``out`` with the tests' metadata; the package's path."""
    return run_to_end(export_model_job(model, out, META, test_image=test_image, **kwargs)).path


def unpacked(package: Path, folder: Path) -> Path:
    """A copy of ``package``'s files in ``folder`` (to edit)."""
    if folder.exists():
        shutil.rmtree(folder)
    with zipfile.ZipFile(package) as z:
        z.extractall(folder)
    return folder


def edit_yaml(folder: Path, change) -> Path:
    """Apply ``change(rdf_dict)`` to the package folder's rdf.yaml; returns the folder."""
    rdf = read_yaml(folder / "rdf.yaml")
    change(rdf)
    write_yaml(rdf, folder / "rdf.yaml")
    return folder


def state_dict_only(package: Path, folder: Path, marker: Path | None = None) -> Path:
    """A copy of ``package`` in ``folder`` whose only weights are the torch state dict (its network built by the
    package's own ``network.py``); with ``marker``, that source creates the file ``marker`` when it runs (its
    sha256 in the YAML updated, as a package made that way would declare it)."""
    folder = unpacked(package, folder)
    source = folder / "network.py"
    if marker is not None:
        source.write_text(source.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")

    def change(rdf):
        rdf["weights"] = {"pytorch_state_dict": rdf["weights"]["pytorch_state_dict"]}
        rdf["weights"]["pytorch_state_dict"]["architecture"]["sha256"] = str(get_sha256(source))

    return edit_yaml(folder, change)


def zipped(folder: Path, out: Path) -> Path:
    """The files of ``folder`` as a zip at ``out``."""
    with zipfile.ZipFile(out, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(folder).as_posix())
    return out


def blob_stardist_3d():
    """A 3D StarDist (ResNet backbone, anisotropic grid) wired by hand, and a volume it finds three objects in.

    Every convolution passes the image's first channel straight through (a centred one), the probability head
    is a steep sigmoid of the image and every ray is 3 pixels long: objects where the volume is bright. The
    volume holds three Gaussian blobs, so the probabilities differ from pixel to pixel (no ties for NMS).
    """
    import numpy as np
    import torch
    from stardist.rays3d import Rays_GoldenSpiral

    from napari_dlmicro.core.models.stardist.network import StarDistNet, StarDistNetConfig
    from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter

    config = StarDistNetConfig(ndim=3, n_rays=16, grid=(1, 2, 2), backbone="resnet", resnet_blocks=1,
                               resnet_filters=4, conv_after=4)
    net = StarDistNet(config).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv3d):
                module.weight.zero_()
                module.bias.zero_()
                k = module.weight.shape[2:]
                if module is not net.dist and module is not net.prob:
                    module.weight[0, 0, k[0] // 2, k[1] // 2, k[2] // 2] = 1.0
        for block in net.body:
            for conv in block.convs:  # the residual branch adds nothing; the shortcut carries the image
                conv.conv.weight.zero_()
        net.prob.weight[0, 0] = 20.0
        net.prob.bias.fill_(-10.0)
        net.dist.bias.fill_(3.0)
    model = StarDistSegmenter(net, name="blobs-3d", prob_thresh=0.5, nms_thresh=0.3, seed_border=0,
                              rays=Rays_GoldenSpiral(16, anisotropy=(2.0, 1.0, 1.0)))
    z, y, x = np.mgrid[:36, :64, :64].astype(np.float32)
    volume = np.zeros((36, 64, 64), np.float32)
    for cz, cy, cx in ((10, 16, 20), (22, 40, 44), (28, 18, 46)):
        volume += np.exp(-(((z - cz) / 2.0) ** 2 + ((y - cy) / 4.0) ** 2 + ((x - cx) / 4.0) ** 2))
    return model, volume
