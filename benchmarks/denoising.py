"""Denoising benchmark on the noisy nuclei sample: PSNR for equal wall time, throughput, GUI stall.

Runs our Noise2Void for ``--minutes`` and, if the optional ``careamics``
package is importable, CAREamics' N2V for the same wall time on the same
image; prints PSNRs against the clean image (with the noisy input, the best
Gaussian blur and non-local means for reference) and training throughput
(patches/s). ``--stall`` trains in the dock of a real viewer and reports the
longest gap of a 10 ms QTimer heartbeat. Figures are printed, never asserted.

``--care`` and ``--sr`` compare CARE instead (see ``care_restoration.py``):
top half to train, bottom half to score, as is and scale-invariant::

    python benchmarks/denoising.py --care            # CARE 2 min vs Gaussian, N2V 3 min, CSBDeep CARE 2 min
    python benchmarks/denoising.py --sr              # CARE x2 3 min vs bicubic (+ best Gaussian)
    python benchmarks/denoising.py --care --steps 1500   # fixed step budgets, for a busy machine

Timed figures need a quiet machine: another busy process cuts the steps a
minute buys several times over. ``--steps`` gives every learned method the
same number of steps instead (N2V ``--n2v-steps``).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np


def baselines(noisy: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """PSNR of the input, the best Gaussian blur and the best non-local means (both tuned on the clean image)."""
    from skimage.filters import gaussian
    from skimage.restoration import denoise_nl_means

    from napari_dlmicro.core.evaluation.restoration import psnr

    sigma = float(np.std(noisy - clean))
    gauss = max(psnr(clean, gaussian(noisy, s, preserve_range=True)) for s in np.arange(0.5, 4.01, 0.25))
    nlm = max(psnr(clean, denoise_nl_means(noisy, h=h * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                                           fast_mode=True)) for h in (0.8, 1.0, 1.3, 1.6, 2.0))
    return {"noisy": psnr(clean, noisy), "gaussian (best sigma)": gauss, "nl-means (best h)": nlm}


def ours(noisy: np.ndarray, clean: np.ndarray, minutes: float, device: str, **extra) -> tuple[float, float]:
    """(PSNR, patches/s) of our N2V trained for ``minutes`` (``extra``: TrainSettings overrides)."""
    from napari_dlmicro.core.evaluation.restoration import psnr
    from napari_dlmicro.core.jobs.denoise import denoise
    from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
    from napari_dlmicro.core.runtime.events import run_to_end

    s = TrainSettings(minutes=minutes, device=device, **extra)
    result = run_to_end(train_restoration([noisy], None, s))
    rate = result.model.config["steps"] * s.batch_size / result.model.config["seconds"]
    return psnr(clean, denoise(noisy, result.model, tta=True)), rate


def checkerboard_db(denoised: np.ndarray, clean: np.ndarray) -> float:
    """How far the error spectrum peaks at the pixel-grid (Nyquist) frequencies, in dB over its high frequencies.

    A checkerboard artefact is a pattern of period two pixels: it shows as
    power near (N/2, N/2), (0, N/2) and (N/2, 0) (5x5 bins around each, as its
    strength varies over the image). About 0 dB means no peak.
    """
    err = np.abs(np.fft.fft2(denoised - clean)) ** 2
    h, w = err.shape
    near = [np.roll(err, (2 - cy, 2 - cx), (0, 1))[:5, :5] for cy, cx in ((h // 2, w // 2), (0, w // 2), (h // 2, 0))]
    peak = np.mean(near)
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    # the median of white noise's power is ln 2 times its mean: divide it out, so white noise reads about 0 dB
    return float(10 * np.log10(peak * np.log(2) / np.median(err[np.hypot(fy, fx) > 0.25])))


def checkerboards(noisy: np.ndarray, clean: np.ndarray, minutes: float, device: str) -> None:
    """Train N2V's pixel replacements and networks for ``minutes`` each; print PSNR and checkerboard peak."""
    from napari_dlmicro.core.evaluation.restoration import psnr
    from napari_dlmicro.core.jobs.denoise import denoise
    from napari_dlmicro.core.models.restoration.train import TrainSettings, train_restoration
    from napari_dlmicro.core.runtime.events import run_to_end

    print(f"{'input':44s} checkerboard {checkerboard_db(noisy, clean):5.1f} dB")
    for name, extra in (("N2V: random neighbour", {"strategy": "n2v"}),
                        ("N2V2 median replacement (default)", {"strategy": "n2v2"}),
                        ("N2V2 median + blur-pool net, no top skip", {"strategy": "n2v2", "n2v2_net": True})):
        settings = TrainSettings(minutes=minutes, device=device, **extra)
        model = run_to_end(train_restoration([noisy], None, settings)).model
        for tta in (False, True):
            out = denoise(noisy, model, tta=tta)
            label = f"{name}{', 8 flips' if tta else ''}"
            print(f"{label:44s} checkerboard {checkerboard_db(out, clean):5.1f} dB  PSNR {psnr(clean, out):6.2f} dB")


def careamics_n2v(noisy: np.ndarray, clean: np.ndarray, minutes: float) -> tuple[float, float] | None:
    """(PSNR, patches/s) of CAREamics' N2V (its defaults) stopped after ``minutes``; None if careamics is absent."""
    try:
        from careamics import CAREamist
        from careamics.config import create_n2v_config
        from lightning.pytorch.callbacks import Callback
    except ImportError:
        return None
    from napari_dlmicro.core.evaluation.restoration import psnr

    class Budget(Callback):
        """Stop training once the wall-clock budget is spent; count the batches."""

        def __init__(self) -> None:
            self.start, self.batches = 0.0, 0

        def on_train_start(self, trainer, *args) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, *args) -> None:
            self.batches += 1
            if time.perf_counter() - self.start > minutes * 60:
                trainer.should_stop = True

    cfg = create_n2v_config(experiment_name="bench", data_type="array", axes="YX", patch_size=[64, 64],
                            batch_size=16, num_epochs=10_000, augmentations=["x_flip", "y_flip", "rotate_90"])
    budget = Budget()
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        model = CAREamist(cfg, work_dir=work, callbacks=[budget], enable_progress_bar=False)
        model.train(train_data=noisy)
        rate = budget.batches * 16 / (time.perf_counter() - budget.start)
        pred = model.predict(noisy, axes="YX", tile_size=(256, 256))
    pred = pred[0] if isinstance(pred, tuple) else pred
    pred = np.squeeze(np.asarray(pred[0] if isinstance(pred, list) else pred))
    return psnr(clean, pred), rate


def gui_stall(minutes: float, kind: str = "n2v") -> dict[str, float | str]:
    """Longest event-loop stall (ms) while the dock trains, then applies with a ground truth; and where.

    ``kind``: ``n2v`` (on the noisy sample), ``care`` (the noisy sample to the
    clean one) or ``care-x2`` (the clean sample's 2x2 means with Poisson noise
    to the clean one, applied at twice the size).
    """
    import napari
    from qtpy.QtCore import QEventLoop, QTimer
    from stall_probe import StallProbe, settle

    from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
    from napari_dlmicro.widgets.denoise import DenoiseWidget

    viewer = napari.Viewer(show=True)
    noisy, clean = noisy_nuclei_arrays()
    viewer.add_image(clean, name="clean")
    if kind == "care-x2":
        from care_restoration import low_resolution

        # each low pixel is the mean of 2x2 fine ones: its centre lies between their four centres
        viewer.add_image(low_resolution(clean), name="noisy", scale=(2.0, 2.0), translate=(0.5, 0.5))
    else:
        viewer.add_image(noisy, name="noisy")
    dock = DenoiseWidget(viewer)
    viewer.window.add_dock_widget(dock)
    dock.image.setCurrentText("noisy")
    dock.kind.setCurrentText("n2v" if kind == "n2v" else "care")  # not the kind the dock remembers
    if kind != "n2v":
        dock.form.field("upsample").setCurrentText("2" if kind == "care-x2" else "1")
        dock.target.setCurrentText("clean")
    dock.truth.setCurrentText("clean")
    dock.minutes.setValue(minutes)

    def wait_idle() -> None:
        loop = QEventLoop()
        poll = QTimer()
        poll.timeout.connect(lambda: dock.job is None and loop.quit())
        poll.start(50)
        loop.exec()
        poll.stop()

    phases: dict[str, float | str] = {"the dock's warm-up before the first click, s": settle()}
    probe = StallProbe(sample=os.environ.get("DLMICRO_STALL_SAMPLE") == "1")
    probe.start()
    for phase, button in (("train", dock.train_btn), ("apply", dock.apply_btn)):
        t0 = time.perf_counter()
        button.click()
        phases[f"{phase}: the click itself, ms"] = (time.perf_counter() - t0) * 1000
        probe.reset()  # from here on the job runs: measure the loop while it does
        wait_idle()
        phases[f"{phase}: longest stall while running, ms"] = probe.max_ms
        phases[f"{phase}: stalls over 50 ms"] = float(sum(g > 50 for _, g in probe.gaps))
        for i, line in enumerate(probe.worst(3, t0)):
            phases[f"{phase}: stall {i + 1}"] = line
    probe.stop()
    phases["quality"] = dock.quality.text().replace("\n", "; ")
    viewer.close()
    return phases


def main() -> None:
    """Parse flags, run, print."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--minutes", type=float, default=None, help="training budget (default 3; 2 with --care)")
    p.add_argument("--device", default="auto")
    p.add_argument("--stall", action="store_true", help="measure the GUI stall while the dock trains instead")
    p.add_argument("--stall-kind", choices=("n2v", "care", "care-x2"), default="n2v",
                   help="with --stall: what the dock trains and applies")
    p.add_argument("--checkerboard", action="store_true",
                   help="compare N2V and N2V2 for checkerboard artefacts (--minutes each) instead")
    p.add_argument("--skip-peer", action="store_true", help="do not run CAREamics")
    p.add_argument("--lr", type=float, default=None, help="override our learning rate")
    p.add_argument("--care", action="store_true", help="CARE on the sample's halves (minutes: 2 unless given)")
    p.add_argument("--sr", action="store_true", help="CARE x2 super-resolution (minutes: 3 unless given)")
    p.add_argument("--n2v-minutes", type=float, default=3.0, help="with --care: N2V's budget")
    p.add_argument("--steps", type=int, default=None, help="with --care/--sr: training steps instead of minutes")
    p.add_argument("--n2v-steps", type=int, default=None, help="with --care --steps: N2V's steps (default: "
                   "1.5x --steps, as 3 minutes are to 2)")
    p.add_argument("--care-setting", action="append", default=[], metavar="FIELD=VALUE",
                   help="with --care/--sr: a TrainSettings field for our CARE (filters=32, depth=4, ...); repeatable")
    args = p.parse_args()
    if args.care or args.sr:
        from care_restoration import Budget, parse_settings, run_care, run_sr

        extra = parse_settings(args.care_setting)
        if args.care:
            n2v_steps = None if args.steps is None else args.n2v_steps or round(1.5 * args.steps)
            run_care(Budget(args.minutes or 2.0, args.steps), Budget(args.n2v_minutes, n2v_steps), args.device,
                     not args.skip_peer, **extra)
        if args.sr:
            run_sr(Budget(args.minutes or 3.0, args.steps), args.device, **extra)
        return
    args.minutes = args.minutes or 3.0
    if args.stall:
        for name, value in gui_stall(args.minutes, args.stall_kind).items():
            print(f"{name:40s} {value:.0f}" if isinstance(value, float) else f"{name:40s} {value}")
        return
    from napari_dlmicro._sample_noisy import noisy_nuclei_arrays

    noisy, clean = noisy_nuclei_arrays()
    if args.checkerboard:
        checkerboards(noisy, clean, args.minutes, args.device)
        return
    reference = baselines(noisy, clean)
    for name, value in reference.items():
        print(f"{name:28s} PSNR {value:6.2f} dB")
    extra = {"learning_rate": args.lr} if args.lr is not None else {}
    value, rate = ours(noisy, clean, args.minutes, args.device, **extra)
    print(f"{'napari-dlmicro N2V':28s} PSNR {value:6.2f} dB  {rate:7.1f} patches/s  ({args.minutes} min)")
    print(f"{'  over non-local means':28s} {value - reference['nl-means (best h)']:+.3f} dB, "
          f"over the best Gaussian {value - reference['gaussian (best sigma)']:+.3f} dB")
    peer = None if args.skip_peer else careamics_n2v(noisy, clean, args.minutes)
    if peer is None:
        print("CAREamics N2V: skipped (--skip-peer, or careamics not installed)")
    else:
        print(f"{'CAREamics N2V':28s} PSNR {peer[0]:6.2f} dB  {peer[1]:7.1f} patches/s  ({args.minutes} min)")


if __name__ == "__main__":
    main()
