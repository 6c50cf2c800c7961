"""The package's documentation (``README.md``): what the model does, how it was trained, how to validate it."""
from __future__ import annotations

from typing import Any

from napari_dlmicro.core.models.bioimageio.describe import Described
from napari_dlmicro.core.models.bioimageio.meta import ExportMeta

_SCORES = ("f1", "f1_tuned", "ap", "mean_iou", "accuracy", "psnr", "ssim", "val_loss")


def _history_lines(config: dict[str, Any]) -> list[str]:
    history = config.get("history") or []
    if not history:
        return ["No training history was recorded with this model (it was converted, not trained here)."]
    last = history[-1]
    scores = ", ".join(f"{k} {float(last[k]):.4g}" for k in _SCORES if isinstance(last.get(k), (int, float)))
    steps = int(last.get("step", 0))
    return [f"Trained for {steps} steps ({len(history)} validations recorded under `config.napari_dlmicro.history`)"
            + (f"; last validation: {scores}." if scores else ".")]


def readme(d: Described, meta: ExportMeta, views: int) -> str:
    """The Markdown text of the package's documentation."""
    lines = [f"# {meta.name}", "", meta.description or d.description, "",
             f"A {d.title} model ({d.ndim}D, {d.n_channels} input channel(s)), exported by napari-dlmicro.", "",
             "## Input and output", "",
             f"- Input `raw`: the image in its own units, axes batch, channel, {', '.join('zyx'[3 - d.ndim:])}; "
             f"each spatial size a multiple of {', '.join(map(str, d.div_by))}.",
             "- Preprocessing and postprocessing are declared with the model (bioimage.io model spec 0.5).",
             f"- Each output pixel needs {', '.join(map(str, d.halo))} pixels of context (the declared halo): "
             "tiles should overlap by this much.", ""]
    if d.family == "stardist":
        lines += ["The network outputs the object probability and the ray distances on its grid; the spec's "
                  "`stardist_postprocessing` (non-maximum suppression, then polygons or polyhedra to labels) "
                  "turns them into labels, with the thresholds tuned for this model.", ""]
        if views > 1:
            lines += [f"napari-dlmicro segments with this model averaging {views} test-time views (flips and turns); "
                      "the package declares the plain one-view pipeline, which other software runs.", ""]
    lines += ["## Training", "", *_history_lines(d.config), "",
              "## Validation", "",
              "The test input and output shipped with the package were made by napari-dlmicro from this model: "
              "`bioimageio test` reproduces them from each weight format. To validate the model on your own "
              "annotated images, segment or restore them and score the result against the ground truth, e.g. "
              "`napari-dlmicro evaluate PRED GT` (F1 at IoU 0.5 for objects, PSNR/SSIM for images).", ""]
    if meta.citations:
        lines += ["## Citations", ""] + [f"- {c.text} ({c.doi or c.url})" for c in meta.citations] + [""]
    return "\n".join(lines)
