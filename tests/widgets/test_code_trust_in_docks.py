"""A bioimage.io package built by its own Python code, in the Segmentation and Denoising docks of a real viewer:
the docks ask first (the question's answer patched), run it on Yes and remember that, and load nothing on No."""
from __future__ import annotations

import zipfile

import numpy as np
import torch._dynamo  # noqa: F401  (import before Qt starts: importing it later crashes under offscreen Qt here)
from bioimageio.spec.utils import get_sha256, read_yaml, write_yaml
from qtpy.QtWidgets import QMessageBox

from napari_dlmicro.core.jobs.export import export_model_job
from napari_dlmicro.core.models.bioimageio.meta import ExportMeta
from napari_dlmicro.core.models.bioimageio.restorer import PackageRestorer
from napari_dlmicro.core.runtime.events import run_to_end
from napari_dlmicro.widgets import _code_trust
from napari_dlmicro.widgets.denoise import DenoiseWidget


def _state_dict_package(model, image, folder, marker):
    """``model`` exported, unpacked into ``folder`` with only its state dict weights; its source touches ``marker``
    when it runs (the sha256 it declares updated to match)."""
    package = run_to_end(export_model_job(model, folder.with_suffix(".zip"), ExportMeta(authors=("Ada Tester",)),
                                          test_image=image)).path
    with zipfile.ZipFile(package) as z:
        z.extractall(folder)
    source = folder / "network.py"
    source.write_text(source.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")
    rdf = read_yaml(folder / "rdf.yaml")
    rdf["weights"] = {"pytorch_state_dict": rdf["weights"]["pytorch_state_dict"]}
    rdf["weights"]["pytorch_state_dict"]["architecture"]["sha256"] = str(get_sha256(source))
    write_yaml(rdf, folder / "rdf.yaml")
    return folder


class Answers:
    """QMessageBox.question patched: the answers given, and the questions asked."""

    def __init__(self, monkeypatch, answer):
        self.answer = answer
        self.asked: list[str] = []
        monkeypatch.setattr(_code_trust.QMessageBox, "question", self)

    def __call__(self, parent, title, text, *args):
        self.asked.append(text)
        return self.answer


def test_segmentation_dock_asks_then_runs_on_yes_and_loads_nothing_on_no(make_napari_viewer, qtbot, monkeypatch,
                                                                        blob_stardist_2d, tmp_path):
    model, image = blob_stardist_2d
    marker = tmp_path / "ran"
    folder = _state_dict_package(model, image, tmp_path / "pkg", marker)
    viewer = make_napari_viewer()
    viewer.add_image(image, name="img")
    _, widget = viewer.window.add_plugin_dock_widget("napari-dlmicro", "Segmentation")
    widget._refresh_models(select=str(folder))
    status = widget.status.text()

    no = Answers(monkeypatch, QMessageBox.StandardButton.No)
    widget.run()
    assert len(no.asked) == 1 and "network.py" in no.asked[0]
    assert str(get_sha256(folder / "network.py")) in no.asked[0] and "blobs-2d" in no.asked[0]
    assert widget.handle is None and not marker.exists()  # nothing loaded, nothing run
    assert [lay.name for lay in viewer.layers] == ["img"] and widget.status.text() == status

    yes = Answers(monkeypatch, QMessageBox.StandardButton.Yes)
    widget.run()
    assert len(yes.asked) == 1 and widget.handle is not None
    qtbot.waitUntil(lambda: widget.handle is None, timeout=120_000)
    assert marker.exists() and widget.status.text() == "Done"
    labels = [lay for lay in viewer.layers if lay.name.startswith("img [")]
    assert len(labels) == 1 and np.asarray(labels[0].data).max() == 3

    widget.run()  # trusted now: not asked again
    qtbot.waitUntil(lambda: widget.handle is None, timeout=120_000)
    assert len(yes.asked) == 1


def test_denoising_dock_loads_the_package_only_after_yes(make_napari_viewer, monkeypatch, trained_n2v, noisy_crop,
                                                         tmp_path):
    marker = tmp_path / "ran"
    folder = _state_dict_package(trained_n2v, noisy_crop[0], tmp_path / "pkg", marker)
    viewer = make_napari_viewer()
    widget = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(widget)

    no = Answers(monkeypatch, QMessageBox.StandardButton.No)
    widget.load_model(str(folder))
    assert len(no.asked) == 1 and widget.model is None and not marker.exists()

    yes = Answers(monkeypatch, QMessageBox.StandardButton.Yes)
    widget.load_model(str(folder))
    assert len(yes.asked) == 1 and isinstance(widget.model, PackageRestorer) and marker.exists()
    assert "loaded" in widget.status.text()

    again = DenoiseWidget(viewer)  # another dock, later: the trust was remembered for that file
    asked = Answers(monkeypatch, QMessageBox.StandardButton.No)
    again.load_model(str(folder))
    assert not asked.asked and isinstance(again.model, PackageRestorer)
