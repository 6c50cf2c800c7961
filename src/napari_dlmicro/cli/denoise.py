"""``napari-dlmicro denoise IMAGE... (-m MODEL | --n2v) -o OUTDIR``."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import UserError
from .common import add_device_flag, expand_inputs, run_with_progress, stem


def denoise_files(inputs: list[str], out_dir: str, model: str | None = None, n2v: bool = False,
                  minutes: float | None = None, epochs: int | None = None, save_model: str | None = None,
                  device: str = "auto", tile: int | None = 512, axes: str | None = None,
                  progress: bool = True) -> list[Path]:
    """Denoise TIFF files into ``out_dir/<stem>_denoised.tif`` (float32); returns the files written.

    With ``n2v=True`` a Noise2Void model is first trained on the inputs
    themselves (``minutes`` or ``epochs``), and saved to ``save_model`` if given.
    """
    from ..core.denoise import denoise_job
    from ..core.devices import resolve_device
    from ..core.events import run_to_end
    from ..core.io import read_image, write_image
    from ..core.models.restoration import load_restoration
    from ..core.restoration_train import TrainSettings, train_restoration

    if bool(model) == bool(n2v):
        raise UserError("give either a model (-m MODEL) or --n2v", "use -m to apply a saved model, --n2v to train on the inputs")
    drive = (lambda job, desc: run_with_progress(job, desc)) if progress else (lambda job, desc: run_to_end(job))
    files = expand_inputs(inputs)
    images = [read_image(f) for f in files]
    dev = resolve_device(device)
    if n2v:
        axes_set = {im.axes for im in images}
        if axes is None and len(axes_set) > 1:
            raise UserError(f"the inputs have different axes ({', '.join(sorted(axes_set))})",
                            "train N2V on images of one kind, or give --axes")
        settings = TrainSettings(kind="n2v", axes=axes or images[0].axes.replace("S", "C"),
                                 minutes=minutes if epochs is None else None, epochs=epochs, device=str(dev))
        result = drive(train_restoration([im.data for im in images], None, settings, save_to=save_model), "train n2v")
        net_model = result.model
    else:
        net_model = load_restoration(model, dev)
        if save_model:
            raise UserError("--save-model only applies with --n2v", "drop --save-model, the model is already saved")
    written = []
    for f, im in zip(files, images):
        out = drive(denoise_job(net_model, im.data, axes or im.axes.replace("S", "C"), tile=tile,
                                tta=n2v or net_model.kind == "n2v"), f"denoise {f.name}")
        written.append(write_image(Path(out_dir) / f"{stem(f)}_denoised.tif", out, im.scale,
                                   (axes or im.axes).replace("S", "C"), im.unit or "µm", im.channel_names))
    return written


def add_parser(subparsers) -> None:
    """Add ``denoise`` to the ``napari-dlmicro`` command."""
    p = subparsers.add_parser("denoise", help="denoise images with a model, or train Noise2Void on them first")
    p.add_argument("images", nargs="+", help="TIFF files or folders")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("-m", "--model", help="model folder or stored model name (N2V or CARE)")
    which.add_argument("--n2v", action="store_true", help="train Noise2Void on the inputs themselves first")
    p.add_argument("-o", "--out", required=True, help="output folder")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="N2V training budget in minutes (default 3)")
    budget.add_argument("--epochs", type=int, default=None, help="N2V training epochs instead of minutes")
    p.add_argument("--save-model", default=None, help="with --n2v: also save the trained model to this folder")
    p.add_argument("--tile", type=int, default=512, help="tile size in pixels (lower it if memory runs out)")
    p.add_argument("--axes", default=None, help="axes of the images (YX, ZYX, TYX, CYX, ...); read from the files by default")
    add_device_flag(p)
    p.set_defaults(run=run)


def run(args) -> int:
    """Run ``denoise`` from parsed arguments."""
    written = denoise_files(args.images, args.out, args.model, args.n2v, args.minutes, args.epochs,
                            args.save_model, args.device, args.tile, args.axes)
    for path in written:
        print(path)
    return 0
