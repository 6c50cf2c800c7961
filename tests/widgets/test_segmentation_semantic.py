"""The Segmentation dock with a stored semantic (class-map) model."""
from __future__ import annotations

import numpy as np
import torch


def _store_semantic(name: str = "classes"):
    """A 2-class semantic model in the store whose head says 'class 1' everywhere."""
    from napari_dlmicro.core.models.folder import save_model_folder
    from napari_dlmicro.core.models.paths import store_dir
    from napari_dlmicro.core.models.semantic.network import SemanticNet
    from napari_dlmicro.core.nets.unet import UNetConfig

    unet = UNetConfig(ndim=2, in_channels=1, depth=1, filters=4, pool=(2, 2))
    net = SemanticNet(unet, 2)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.0, 1.0]))
    folder = store_dir() / name
    save_model_folder(folder, {"kind": "semantic", "name": name, "unet": unet.to_dict(), "n_classes": 2}, net)
    return folder


def test_stored_semantic_model_is_listed_and_segments(make_napari_viewer, qtbot):
    folder = _store_semantic()
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((3, 96, 80)), name="stack")
    _, widget = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    widget._refresh_models()
    index = widget.model_combo.findData(str(folder))
    assert index >= 0, [widget.model_combo.itemText(i) for i in range(widget.model_combo.count())]
    widget.model_combo.setCurrentIndex(index)
    assert widget.settings_form.fields == {}  # a class map has no thresholds
    widget.axes_edit.setText("ZYX")
    widget.run()
    qtbot.waitUntil(lambda: widget.handle is None, timeout=60_000)
    layer = viewer.layers["stack [classes]"]
    assert layer.data.shape == (3, 96, 80)
    assert np.unique(np.asarray(layer.data)).tolist() == [1]  # class 1 in every plane, never offset
    assert "1 class in" in widget.count_label.text()
