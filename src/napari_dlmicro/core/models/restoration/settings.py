"""Settings of a Noise2Void or CARE training run, with the measurements behind their defaults."""
from __future__ import annotations

from dataclasses import dataclass

from napari_dlmicro.core.settings import Setting, from_field
from napari_dlmicro.core.training.budget import Budget

# where the schedule starts, per kind. CARE, measured on the noisy nuclei sample (top half to train, bottom half
# to score, 400 steps of 16 patches of 64): 1e-3 31.41 and 31.36 dB (seeds 0, 1), 5e-4 31.01 and 30.92 dB,
# 2e-3 31.44 dB (seed 0); an L2 loss (31.03) and half the patches drawn on signal (31.12) did not lift 5e-4 as much.
# Measured again at 1e-3, 400 steps, one thread, seed 0 (baseline 31.36 dB; seed 1 31.25): 3e-3 31.00, 3e-3 with
# batch norm 31.14, an L2 loss 31.08, no residual connection 31.43, a U-Net of depth 4 31.38 (no residual), no
# validation stripe (all of the pair trained on) 31.35; 8 patches a step for 800 steps without the residual (the
# same patches) 31.46 and 31.51 (seeds 0, 1: +0.18 dB on average, the one lead; the residual is what
# super-resolution needs, see below). Three times the steps (1200) reach 31.59 dB: the network gains little more.
# Super-resolution x2, 600 steps: 29.70 dB as is, 29.11 without the residual (the interpolated input), 29.55 at 2e-3
LEARNING_RATES = {"n2v": 1e-3, "care": 1e-3}


@dataclass(frozen=True)
class TrainSettings:
    """Everything a restoration training run needs besides the data."""

    kind: str = "n2v"  # "n2v" | "care"
    axes: str | None = None  # axes of every input image; None guesses (YX, ZYX, ...)
    channels: str = "independent"  # "independent" | "joint"
    minutes: float | None = 3.0  # wall-clock budget; used when epochs is None
    epochs: int | None = None
    steps_per_epoch: int = 50
    patch: int = 64
    batch_size: int = 16
    val_fraction: float = 0.1
    # None: the kind's own (LEARNING_RATES). Measured, 3 minutes on the noisy sample, six runs each: N2V at 1e-3
    # 31.18-31.62 dB (mean 31.43), at 5e-4 31.22-31.57 (mean 31.38), at 1.5e-3 (three runs) mean 31.42; CARE: see
    # LEARNING_RATES (an earlier 1-minute pair, before CARE's intensity and patch fixes, put 1e-3 0.13 dB below 5e-4)
    learning_rate: float | None = None
    augment: bool = True
    strategy: str = "n2v2"  # N2V pixel replacement: "n2v" (random neighbour) or "n2v2" (median)
    # Measured on the noisy nuclei sample, 3 minutes on 2 CPU cores: a 16-filter U-Net of depth 3 runs 2.2x
    # more patches per second than 32 filters at depth 2 and ends 0.5 dB higher; masking more pixels gives
    # each step more to learn from: 2 % 30.8-30.9 dB, 5 % 31.3-31.4 dB (four runs), 10 % 31.1-31.6 dB (three
    # runs: no better on average, and less steady).
    mask_fraction: float = 0.05
    # replace masked pixels from unmasked neighbours only (see n2v.apply_mask). Measured, 3 minutes:
    # 31.35 and 31.57 dB sealed, 31.22-31.39 dB (three runs) without
    sealed: bool = True
    depth: int | None = None  # None: 3 for 2D; 2 for 3D, where every level also halves Z
    filters: int = 16
    device: str = "auto"
    seed: int = 0
    preview_every_s: float = 3.0
    # N2V2's network too (blur-pool, no top skip; needs strategy n2v2). Off by default: it learns
    # more slowly, and in a few minutes of training the plain U-Net denoised better.
    n2v2_net: bool = False
    # which weights a run ends with: "best" (lowest validation loss), "last", or "auto": the last when the
    # budget is spent (the schedule ends on a low rate), the best so far when cancelled. Measured, 3 minutes:
    # at the end of a run the validation loss on a few thousand masked pixels is mostly noise, and the
    # "best" checkpoint was 0.41 and 0.06 dB below the last weights in two paired runs
    keep: str = "auto"
    max_threads: int | None = None  # CPU threads at most (a GUI leaves a core to its event loop)
    # bf16 autocast on CPUs with native bf16 (AVX512-BF16 or AMX; CUDA uses it wherever supported), for all
    # but the last ``fp32_tail`` of the budget, which trains in full precision: the low-rate end of the
    # schedule makes the small, precise steps that bf16 rounds away. Measured, N2V 3 minutes on the noisy
    # sample, 2 CPU cores: fp32 throughout 31.18-31.62 dB (seven runs, mean 31.42) at about 180 patches/s;
    # bf16 with the last 30 % in fp32 31.58, 31.64 and 31.66 dB at 1.37x the patches/s; one run each with the
    # last 15 % in fp32, 31.52 dB, and bf16 throughout, 31.73 dB at 1.55x. The fp32 end costs a little speed
    # and keeps the final steps exact on images whose intensities need more than bf16's 8 bits of mantissa.
    # CARE, 1 minute on half the sample, held-out half: 30.56 and 30.55 dB, against 30.38 and 30.54 in fp32
    cpu_bf16: bool = True
    fp32_tail: float = 0.3
    # CARE only (never saved with an N2V model)
    intensity: str = "relative"  # see restoration.intensity
    loss: str = "l1"  # "l1" | "l2"
    focus: float = 0.0  # fraction of patches drawn where the target has structure
    intensity_augment: bool = False  # scale input and target alike by 0.5-2x (absolute intensity only)
    # share of input patches made afresh from the target and the pair's own noise (data.renoise); None: 1 where
    # the pairs differ by pixel noise alone, 0.5 or 0 where structure shows (renoise.auto_share). Measured, the
    # noisy nuclei sample's halves, seeds 0 and 1: x2 super-resolution 3 min 29.79 and 29.60 dB against 29.35
    # and 29.33 without, 0.5 29.56 (seed 0); denoising 2 min 31.67 and 31.49 against 31.57 and 31.48
    renoise: float | None = None
    upsample: int = 1  # the target is this many times larger (YX, or Z for stacks)

    @property
    def start_lr(self) -> float:
        """The learning rate the schedule starts from: ``learning_rate``, or the kind's default."""
        return float(self.learning_rate) if self.learning_rate else LEARNING_RATES.get(self.kind, 5e-4)

    def budget(self) -> Budget:
        """The run's budget: ``epochs`` of ``steps_per_epoch`` steps, else ``minutes`` (3 when neither is set)."""
        return Budget(minutes=3.0 if self.minutes is None else self.minutes, epochs=self.epochs,
                      steps_per_epoch=self.steps_per_epoch)

    def saved(self) -> dict:
        """The settings this kind uses, as saved with the model (N2V's masking is not CARE's business)."""
        own = {k: v for k, v in vars(self).items() if k not in ("device",)}
        for key in N2V_ONLY if self.kind != "n2v" else CARE_ONLY:
            own.pop(key, None)
        return own


N2V_ONLY = ("strategy", "mask_fraction", "sealed", "n2v2_net")
CARE_ONLY = ("intensity", "loss", "focus", "intensity_augment", "upsample", "renoise")


def _shared(f: type) -> tuple[Setting, ...]:
    return (
        from_field(f, "minutes", "Minutes", "Wall-clock budget (used when epochs is not set).", minimum=0.05,
                   maximum=10080, step=0.5),
        from_field(f, "epochs", "Epochs", "Epochs of 'steps per epoch' steps instead of minutes.", minimum=1,
                   maximum=100000, step=1),
        from_field(f, "patch", "Patch size", "Side of the training patches, in pixels.", minimum=8, maximum=512,
                   step=16),
        from_field(f, "batch_size", "Batch size", "Patches per training step.", minimum=1, maximum=256, step=1),
        from_field(f, "learning_rate", "Learning rate", "Start of the schedule (empty: the kind's own, "
                   + ", ".join(f"{k.upper()} {v:g}" for k, v in LEARNING_RATES.items()) + ").", minimum=1e-6,
                   maximum=0.1, step=1e-4, cli="--lr"),
        from_field(f, "val_fraction", "Validation fraction", "Part of the data held out for the validation loss.",
                   minimum=0.0, maximum=0.5, step=0.05),
        from_field(f, "augment", "Augment", "Flips and 90-degree turns of the patches."),
        from_field(f, "channels", "Channels", "Denoise channels one by one, or together.",
                   choices=("independent", "joint")),
        from_field(f, "steps_per_epoch", "Steps per epoch", "Steps between validations.", minimum=1,
                   maximum=100000, step=10),
        from_field(f, "depth", "U-Net depth", "Levels of the U-Net (empty: 3 for 2D, 2 for 3D).", minimum=1,
                   maximum=5, step=1),
        from_field(f, "filters", "Base filters", "Filters of the first U-Net level.", minimum=4, maximum=128, step=4),
        from_field(f, "seed", "Seed", "Seed of the network's start and the patch order.", minimum=0,
                   maximum=2**31 - 1, step=1),
    )


N2V_TRAIN_SETTINGS = _shared(TrainSettings) + (
    from_field(TrainSettings, "strategy", "Pixel replacement", "n2v: a random neighbour; n2v2: the median of the "
               "neighbourhood (no checkerboard).", choices=("n2v", "n2v2")),
    from_field(TrainSettings, "mask_fraction", "Masked fraction", "Pixels masked per patch.", minimum=0.001,
               maximum=0.5, step=0.01),
    from_field(TrainSettings, "n2v2_net", "N2V2 network", "Blur-pool U-Net without its top skip connection."),
)
CARE_TRAIN_SETTINGS = _shared(TrainSettings) + (
    from_field(TrainSettings, "upsample", "Upsampling", "Super-resolution: each target is this many times larger "
               "than its input, in-plane (Y and X) or, for stacks, along Z alone (read from the pairs' sizes); "
               "1 restores at the input's size.", choices=("1", "2", "4")),
    from_field(TrainSettings, "intensity", "Intensity", "relative: each image is scaled by its own range, and the "
               "output mapped back with it (survives other content and exposure); absolute: one fixed scale for "
               "all images, from the training set.", choices=("relative", "absolute")),
    from_field(TrainSettings, "loss", "Loss", "l2: mean squared error (what PSNR scores); l1: mean absolute "
               "error.", choices=("l1", "l2")),
    from_field(TrainSettings, "focus", "Focus on signal", "Share of patches drawn where the target has signal, "
               "the rest anywhere.", minimum=0.0, maximum=1.0, step=0.1),
    from_field(TrainSettings, "renoise", "Fresh noise", "Share of training inputs remade from their target and the "
               "pair's own noise, redrawn pixel by pixel at the same signal level, so the network never learns one "
               "draw of the noise by heart; 0 trains on the inputs as they are (empty: 1 where the pairs differ by "
               "noise alone, less where blur or shifts show).", minimum=0.0, maximum=1.0, step=0.1),
)
