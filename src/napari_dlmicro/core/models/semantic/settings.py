"""How a semantic U-Net trains (it has no prediction settings: a class per pixel, nothing to tune)."""
from __future__ import annotations

from dataclasses import dataclass

from napari_dlmicro.core.data.augment import AUGMENTATIONS, DEFAULT_AUGMENT, INTENSITY_GAIN, SCALE_RANGE
from napari_dlmicro.core.settings import Setting, from_field


@dataclass(frozen=True)
class SemanticTraining:
    """Settings of a semantic U-Net run."""

    depth: int = 3
    filters: int = 32
    patch: int = 128
    batch: int = 4
    lr: float = 1e-3
    minutes: float | None = 5.0
    epochs: int | None = None
    val_fraction: float = 0.1
    augment: tuple[str, ...] = DEFAULT_AUGMENT
    seed: int = 0
    threads: int | None = None  # CPU threads at most (a GUI leaves a core to napari)


def _train_settings() -> tuple[Setting, ...]:
    f = SemanticTraining
    return (
        from_field(f, "minutes", "Minutes", "Wall-clock budget.", minimum=0.05, maximum=10080, step=0.5),
        from_field(f, "epochs", "Epochs", "Train for this many epochs instead of minutes.", minimum=1,
                   maximum=100000, step=1),
        from_field(f, "patch", "Patch size", "Side of the training patches, in pixels (a multiple of 8).",
                   minimum=16, maximum=1024, step=16),
        from_field(f, "batch", "Batch size", "Patches per training step.", minimum=1, maximum=256, step=1,
                   cli="--batch-size"),
        from_field(f, "lr", "Learning rate", "Where Adam's warm-up and cosine schedule starts.", minimum=1e-6,
                   maximum=1.0, step=1e-4),
        from_field(f, "val_fraction", "Validation fraction", "Part of the annotations held out for validation.",
                   minimum=0.05, maximum=0.5, step=0.05),
        from_field(f, "augment", "Augmentation", "Comma-separated, or none: flips and rot90 mirror and turn patches, "
                   f"rotate turns them by any angle, scale zooms {SCALE_RANGE[0]}-{SCALE_RANGE[1]}x, intensity "
                   f"scales by {INTENSITY_GAIN[0]}-{INTENSITY_GAIN[1]}x, elastic warps.", choices=AUGMENTATIONS),
        from_field(f, "depth", "U-Net depth", "Levels of the U-Net.", minimum=1, maximum=5, step=1),
        from_field(f, "filters", "Base filters", "Filters of the first U-Net level.", minimum=4, maximum=128, step=4),
        from_field(f, "seed", "Seed", "Seed of the network's start and the patch order.", minimum=0,
                   maximum=2**31 - 1, step=1),
    )


TRAIN_SETTINGS = _train_settings()
