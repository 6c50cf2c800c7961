"""Official StarDist (Keras 2) model folders load into our torch network.

No TensorFlow here: the tests write ``weights_best.h5`` files in the layout
that Keras 2 gives StarDist models (``layer_names`` attribute listing every
layer in graph order; one group per layer holding ``<layer>/kernel:0`` and
``<layer>/bias:0``; kernels as ``(k..., in, out)``; unnamed convolutions
numbered ``conv2d``, ``conv2d_1``, ... in the order Keras created them, which
for residual blocks differs from the graph order), next to an official-style
``config.json`` and ``thresholds.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.models.stardist.folder import load_official, net_config_from_official
from napari_dlmicro.core.models.stardist.network import StarDistNet

CPU = torch.device("cpu")


def _config_2d(n_rays: int = 8) -> dict:
    """An official-style 2D config (small U-Net: depth 2, 8 filters, grid 2)."""
    return {
        "n_dim": 2, "axes": "YXC", "n_channel_in": 1, "n_channel_out": n_rays + 1, "n_rays": n_rays,
        "grid": [2, 2], "backbone": "unet", "n_classes": None,
        "unet_n_depth": 2, "unet_kernel_size": [3, 3], "unet_n_filter_base": 8, "unet_n_conv_per_depth": 2,
        "unet_pool": [2, 2], "unet_activation": "relu", "unet_last_activation": "relu",
        "unet_batch_norm": False, "unet_dropout": 0.0, "unet_expansion": 2, "unet_prefix": "",
        "net_conv_after_unet": 16, "net_input_shape": [None, None, 1], "net_mask_shape": [None, None, 1],
        "train_patch_size": [64, 64],
    }


def _config_3d(n_rays: int = 16) -> dict:
    """An official-style 3D config: StarDist3D's ResNet backbone, anisotropic grid."""
    anisotropy = [2.0, 1.0, 1.0]
    return {
        "n_dim": 3, "axes": "ZYXC", "n_channel_in": 1, "n_channel_out": n_rays + 1, "n_rays": n_rays,
        "grid": [1, 2, 2], "anisotropy": anisotropy, "backbone": "resnet",
        "rays_json": {"name": "Rays_GoldenSpiral", "kwargs": {"n": n_rays, "anisotropy": anisotropy}},
        "n_classes": None, "resnet_n_blocks": 2, "resnet_kernel_size": [3, 3, 3],
        "resnet_kernel_init": "he_normal", "resnet_n_filter_base": 4, "resnet_n_conv_per_block": 3,
        "resnet_activation": "relu", "resnet_batch_norm": False, "net_conv_after_resnet": 8,
        "net_input_shape": [None, None, None, 1], "net_mask_shape": [None, None, None, 1],
    }


def _keras_layers_2d(net: StarDistNet) -> list[tuple[str, torch.nn.Module | None]]:
    """(Keras layer name, our conv or None) in the graph order Keras 2 writes for a 2D StarDist U-Net."""
    depth, n_conv = net.config.unet.depth, net.config.unet.n_conv
    body = net.body
    layers: list[tuple[str, torch.nn.Module | None]] = [("input", None)]
    auto = 0
    for m in net.prelude:
        if isinstance(m, torch.nn.MaxPool2d):
            layers.append(("max_pooling2d", None))
        else:
            layers.append(("conv2d" + (f"_{auto}" if auto else ""), m.conv))
            auto += 1
    for n in range(depth):
        for i in range(n_conv):
            layers.append((f"down_level_{n}_no_{i}", body.down[n][i].conv))
        layers.append((f"max_{n}", None))
    for i in range(n_conv - 1):
        layers.append((f"middle_{i}", body.middle[i].conv))
    layers.append((f"middle_{n_conv}", body.middle[n_conv - 1].conv))
    for k, n in enumerate(reversed(range(depth))):
        layers += [("up_sampling2d" + (f"_{k}" if k else ""), None), ("concatenate" + (f"_{k}" if k else ""), None)]
        for i in range(n_conv - 1):
            layers.append((f"up_level_{n}_no_{i}", body.up[k][i].conv))
        layers.append((f"up_level_{n}_no_{n_conv}", body.up[k][n_conv - 1].conv))
    layers += [("features", net.features.conv), ("prob", net.prob), ("dist", net.dist)]
    return layers


def _keras_layers_3d_resnet(net: StarDistNet, first: int = 0) -> list[tuple[str, torch.nn.Module | None]]:
    """The same for StarDist3D's ResNet; auto numbers start at ``first`` (as after an earlier model)."""
    counter = iter(range(first, 10_000))
    name = lambda: (lambda i: "conv3d" + (f"_{i}" if i else ""))(next(counter))
    layers: list[tuple[str, torch.nn.Module | None]] = [("input", None)]
    layers += [(name(), m.conv) for m in net.prelude]
    for b, block in enumerate(net.body):
        convs = [(name(), c.conv) for c in block.convs]  # created first: strided, middle, last
        shortcut = (name(), block.shortcut.conv) if block.shortcut is not None else None
        for j, item in enumerate(convs[:-1]):
            layers += [item, (f"activation_{b}_{j}", None)]
        if shortcut is not None:  # graph order: the shortcut (created last) comes before the last conv
            layers.append(shortcut)
        layers += [convs[-1], (f"add_{b}", None), (f"activation_{b}", None)]
    layers += [("features", net.features.conv), ("prob", net.prob), ("dist", net.dist)]
    return layers


def _write_keras_h5(path: Path, layers, ndim: int, *, root: str = "", as_bytes: bool = False) -> None:
    """Write ``layers`` as Keras 2 ``save_weights`` does (``root='model_weights'``: as ``model.save``)."""
    enc = (lambda names: np.array([n.encode() for n in names])) if as_bytes else (lambda names: names)
    with h5py.File(path, "w") as f:
        g = f.require_group(root) if root else f
        g.attrs["backend"] = "tensorflow"
        g.attrs["keras_version"] = "2.15.0"
        g.attrs["layer_names"] = enc([n for n, _ in layers])
        for layer_name, conv in layers:
            group = g.create_group(layer_name)
            if conv is None:
                group.attrs["weight_names"] = np.array([], dtype="float64")
                continue
            group.attrs["weight_names"] = enc([f"{layer_name}/kernel:0", f"{layer_name}/bias:0"])
            inner = group.create_group(layer_name)
            w = conv.weight.detach().numpy()
            # torch (out, in, k...) -> Keras (k..., in, out)
            inner["kernel:0"] = np.ascontiguousarray(w.transpose(tuple(range(2, 2 + ndim)) + (1, 0)))
            inner["bias:0"] = conv.bias.detach().numpy()


def _official_folder(tmp_path: Path, cfg: dict, layers, *, thresholds=None, **h5_kwargs) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "thresholds.json").write_text(json.dumps(thresholds or {"prob": 0.479, "nms": 0.3}))
    _write_keras_h5(folder / "weights_best.h5", layers, cfg["n_dim"], **h5_kwargs)
    return folder


def _random_net(cfg: dict, seed: int) -> StarDistNet:
    torch.manual_seed(seed)
    net = StarDistNet(net_config_from_official(cfg)).eval()
    with torch.no_grad():
        for p in net.parameters():  # biases too, so a missed bias copy shows
            p.normal_(0.0, 0.2)
    return net


def _outputs(net: StarDistNet, x: torch.Tensor):
    with torch.inference_mode():
        return net(x)


@pytest.mark.parametrize("root", ["", "model_weights"])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_2d_unet_weights_load_exactly(tmp_path, root, as_bytes):
    cfg = _config_2d()
    source = _random_net(cfg, seed=0)
    folder = _official_folder(tmp_path, cfg, _keras_layers_2d(source), root=root, as_bytes=as_bytes)

    seg = load_official(folder, CPU)

    assert seg.net is not source
    x = torch.rand(1, 1, 32, 48)
    for a, b in zip(_outputs(source, x), _outputs(seg.net, x)):
        assert torch.equal(a, b)
    assert seg.default_settings() == {"prob_thresh": 0.479, "nms_thresh": 0.3, "views": 1}


def test_3d_resnet_weights_load_exactly(tmp_path):
    cfg = _config_3d()
    source = _random_net(cfg, seed=1)
    # Auto names numbered from 7 on, as when another model was built first in
    # the same Keras session; the numbers pass 10, so they must sort as numbers.
    folder = _official_folder(tmp_path, cfg, _keras_layers_3d_resnet(source, first=7))

    seg = load_official(folder, CPU)

    x = torch.rand(1, 1, 8, 16, 16)
    for a, b in zip(_outputs(source, x), _outputs(seg.net, x)):
        assert torch.equal(a, b)
    assert seg.rays is not None and len(seg.rays) == cfg["n_rays"]


def test_segmenter_forward_uses_loaded_weights(tmp_path):
    cfg = _config_2d()
    source = _random_net(cfg, seed=2)
    folder = _official_folder(tmp_path, cfg, _keras_layers_2d(source))
    seg = load_official(folder, CPU)
    image = np.random.default_rng(0).random((32, 32, 1), dtype=np.float32)

    prob, dist = seg.forward(image)

    ref_prob, ref_dist = _outputs(source, torch.from_numpy(image[None, None, ..., 0]))
    assert prob.shape == (16, 16) and dist.shape == (16, 16, cfg["n_rays"])
    np.testing.assert_array_equal(prob, ref_prob[0, 0].numpy())
    np.testing.assert_array_equal(dist, np.moveaxis(ref_dist[0].numpy(), 0, -1))


def test_missing_named_layer_is_a_user_error(tmp_path):
    cfg = _config_2d()
    layers = [(n, c) for n, c in _keras_layers_2d(_random_net(cfg, 0)) if n != "features"]
    folder = _official_folder(tmp_path, cfg, layers)
    with pytest.raises(UserError, match="lacks the layers features"):
        load_official(folder, CPU)


def test_missing_unnamed_conv_is_a_user_error(tmp_path):
    cfg = _config_2d()
    layers = [(n, c) for n, c in _keras_layers_2d(_random_net(cfg, 0)) if n != "conv2d_1"]
    folder = _official_folder(tmp_path, cfg, layers)
    with pytest.raises(UserError, match="unnamed convolutions"):
        load_official(folder, CPU)


def test_weights_of_another_shape_are_a_user_error(tmp_path):
    # Weights of a 16-ray model next to a config that says 8 rays.
    layers = _keras_layers_2d(_random_net(_config_2d(n_rays=16), 0))
    folder = _official_folder(tmp_path, _config_2d(n_rays=8), layers)
    with pytest.raises(UserError, match=r"layer 'dist' has weights of shape .*different models"):
        load_official(folder, CPU)


def test_not_an_hdf5_file_is_a_user_error(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_config_2d()))
    (folder / "weights_best.h5").write_bytes(b"this is not HDF5 at all")
    with pytest.raises(UserError, match="not a readable HDF5 weights file"):
        load_official(folder, CPU)


def test_hdf5_without_keras_layers_is_a_user_error(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_config_2d()))
    with h5py.File(folder / "weights_best.h5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(UserError, match="no Keras convolution weights"):
        load_official(folder, CPU)
