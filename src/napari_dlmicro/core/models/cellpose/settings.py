"""Cellpose-SAM's settings: how it segments (diameter, thresholds, 3D) and how it is fine-tuned."""
from __future__ import annotations

from dataclasses import dataclass

from napari_dlmicro.core.settings import Setting, from_field

SETTINGS = (
    Setting(
        "diameter", "Object diameter (px)", 0.0, float, 0.0, 1000.0, 1.0,
        "Typical object diameter in pixels; 0 leaves the image as it is. Cellpose-SAM "
        "is trained on objects about 30 px across: a diameter D rescales the image by "
        "30/D before the network (D below 30 enlarges it, so it runs slower).",
    ),
    Setting(
        "flow_threshold", "Flow threshold", 0.4, float, 0.0, 3.0, 0.05,
        "Largest flow error a mask may have: raise it to keep more (and less regular) "
        "masks, lower it to drop ill-shaped ones. Not used for true 3D.",
    ),
    Setting(
        "cellprob_threshold", "Cell probability threshold", 0.0, float, -6.0, 6.0, 0.1,
        "Pixels whose cell probability (a logit) is above this go into masks: lower it "
        "to find more and larger masks, raise it for fewer and tighter ones.",
    ),
    Setting(
        "min_size", "Minimum size (px)", 15.0, float, 0.0, 100000.0, 1.0,
        "Masks with fewer pixels (voxels in 3D) than this are dropped.",
    ),
    Setting(
        "niter", "Flow iterations", 0.0, float, 0.0, 5000.0, 10.0,
        "Steps of the flow dynamics that gather pixels into masks; 0 picks it "
        "automatically (200, scaled with the diameter). Raise it for long, thin objects.",
    ),
    Setting(
        "stitch_threshold", "3D stitch threshold", 0.0, float, 0.0, 1.0, 0.05,
        "Volumes only. 0: true 3D, the network runs over YX, ZY and ZX planes (best "
        "masks, at least 3x the 2D time). Above 0: each plane is segmented in 2D and "
        "masks in neighbouring planes that overlap by more than this IoU are joined "
        "(much faster on a CPU).",
    ),
    Setting(
        "anisotropy", "Z anisotropy", 1.0, float, 0.1, 50.0, 0.1,
        "True 3D only: Z step divided by the XY pixel size (2 when planes are twice as "
        "far apart as pixels); the volume is stretched along Z to match.",
    ),
)


@dataclass(frozen=True)
class CellposeTraining:
    """Settings of a Cellpose-SAM fine-tuning run."""

    lr: float = 1e-5  # cellpose's default for Cellpose-SAM; recommended 1e-5 to 5e-5
    weight_decay: float = 0.1  # cellpose's default
    batch: int = 1
    epochs: int | None = 100
    minutes: float | None = None
    val_fraction: float = 0.1
    scale_range: float = 0.5  # zoom augmentation: 1 +- this / 2 (cellpose's default)
    seed: int = 0


def _train_settings() -> tuple[Setting, ...]:
    f = CellposeTraining
    return (
        from_field(f, "epochs", "Epochs", "Passes over the training images (cellpose's default: 100).", minimum=1,
                   maximum=100000, step=1),
        from_field(f, "minutes", "Minutes", "Wall-clock budget instead of epochs.", minimum=0.05, maximum=10080,
                   step=0.5),
        from_field(f, "lr", "Learning rate", "Cellpose-SAM fine-tunes at 1e-5 to 5e-5; far higher rates wreck the "
                   "pretrained weights.", minimum=1e-7, maximum=1e-3, step=1e-6),
        from_field(f, "weight_decay", "Weight decay", "AdamW's weight decay.", minimum=0.0, maximum=1.0, step=0.01),
        from_field(f, "batch", "Batch size", "256x256 crops per step.", minimum=1, maximum=64, step=1,
                   cli="--batch-size"),
        from_field(f, "val_fraction", "Validation fraction", "Part of the annotations held out for validation.",
                   minimum=0.05, maximum=0.5, step=0.05),
        from_field(f, "scale_range", "Zoom range", "Crops are zoomed by 1 - r/2 to 1 + r/2.", minimum=0.0,
                   maximum=1.0, step=0.05),
        from_field(f, "seed", "Seed", "Seed of the crop order.", minimum=0, maximum=2**31 - 1, step=1),
    )


TRAIN_SETTINGS = _train_settings()
