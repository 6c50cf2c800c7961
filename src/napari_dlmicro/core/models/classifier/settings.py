"""How an object classifier trains: fast (a random forest on features) or deep (a ResNet-18 on object crops)."""
from __future__ import annotations

from dataclasses import dataclass

from napari_dlmicro.core.settings import Setting, from_field
from napari_dlmicro.core.training.budget import Budget

CLASSIFIERS = ("fast", "deep")
CROP_AUGMENTATIONS = ("flips", "rot90", "intensity", "elastic")


@dataclass(frozen=True)
class ClassifierTraining:
    """Settings of one classifier training run (the deep classifier's budget: ``minutes`` or ``epochs``)."""

    classifier: str = "fast"
    minutes: float | None = 2.0
    epochs: int | None = None
    lr: float = 1e-3
    batch: int = 32
    # The fast classifier scores itself by cross-validation with round(1 / val_fraction) folds (every labelled
    # object held out once), then fits on them all; the deep one holds this fraction out for validation
    val_fraction: float = 0.2
    seed: int = 0
    trees: int = 100
    crop: int = 64  # side of the deep classifier's input, in pixels
    context: float = 0.5  # margin around an object in its crop, as a fraction of its size on each side
    augment: tuple[str, ...] = ("flips", "rot90", "intensity")
    pretrained: bool = True  # start the deep classifier from ImageNet weights where they can be had
    validate_every_s: float = 10.0  # under a time budget, validate at most this often
    threads: int | None = None  # CPU threads at most (a GUI leaves a core to napari)

    def budget(self, steps_per_epoch: int) -> Budget:
        """The deep run's budget, counted in epochs of ``steps_per_epoch`` steps."""
        return Budget(minutes=self.minutes, epochs=self.epochs, steps_per_epoch=steps_per_epoch)


def _train_settings() -> tuple[Setting, ...]:
    f = ClassifierTraining
    return (
        from_field(f, "classifier", "Classifier", "fast: a random forest on object features, refitted as you "
                   "click; deep: a ResNet-18 on a crop around each object, fine-tuned (best on a GPU).",
                   choices=CLASSIFIERS, cli="--kind"),
        from_field(f, "minutes", "Minutes", "Wall-clock budget of the deep classifier; it stops, validates and "
                   "saves in time.", minimum=0.05, maximum=10080, step=0.5),
        from_field(f, "epochs", "Epochs", "Train the deep classifier for this many epochs instead of minutes.",
                   minimum=1, maximum=100000, step=1),
        from_field(f, "lr", "Learning rate", "Where the deep classifier's warm-up and cosine schedule starts.",
                   minimum=1e-6, maximum=1.0, step=1e-4),
        from_field(f, "batch", "Batch size", "Object crops per training step (deep).", minimum=2, maximum=1024,
                   step=1, cli="--batch-size"),
        from_field(f, "val_fraction", "Validation fraction", "Part of the labelled objects held out to score the "
                   "classifier (fast: one fold of a cross-validation).", minimum=0.05, maximum=0.5, step=0.05),
        from_field(f, "seed", "Seed", "Seed of the split, the forest and the network's start.", minimum=0,
                   maximum=2**31 - 1, step=1),
        from_field(f, "trees", "Trees", "Trees of the fast classifier's random forest.", minimum=1, maximum=2000,
                   step=10),
        from_field(f, "crop", "Crop size", "Side of the deep classifier's object crops, in pixels.", minimum=32,
                   maximum=256, step=16),
        from_field(f, "context", "Context", "Margin around an object in its crop, as a fraction of its size.",
                   minimum=0.0, maximum=3.0, step=0.25),
        from_field(f, "augment", "Augmentation", "Comma-separated, or none: flips and rot90 mirror and turn crops, "
                   "intensity scales them, elastic warps them (deep).", choices=CROP_AUGMENTATIONS),
        from_field(f, "pretrained", "ImageNet weights", "Start the deep classifier from ImageNet weights (downloaded "
                   "once; without them it trains from scratch)."),
    )


TRAIN_SETTINGS = _train_settings()
