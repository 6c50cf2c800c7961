"""Parity of our PyTorch StarDist with StarDist's own TensorFlow implementation.

Needs a Python environment with tensorflow, stardist and csbdeep (and, for
TensorFlow 2.16 or newer, the ``tf_keras`` package: official StarDist model
folders hold Keras 2 weights, which only Keras 2 writes). Where those do not
import, the script says why and exits with status 0.

For each network shape that StarDist ships or builds by default

* ``2D_versatile_fluo`` shape (32 rays, grid 2, U-Net depth 3, one channel),
* ``2D_versatile_he`` shape (the same with three input channels),
* 3D default (ResNet backbone, anisotropic grid, 96 golden-spiral rays),
* 3D with the U-Net backbone,

it trains a StarDist model with TensorFlow for a few steps on stardist's
nuclei sample (so that its predictions hold real objects), lets StarDist save
the folder (``config.json``, ``thresholds.json``, ``weights_best.h5``), loads
that folder with :func:`napari_dlmicro.core.models.stardist.folder.load_official`
and compares, on the image:

* the raw network outputs (max |prob diff|, max |dist diff|),
* the labels from ``predict_instances`` and from our ``segment`` with the same
  thresholds: object counts, F1 at IoU 0.5 (``stardist.matching``) and the
  fraction of identical pixels, untiled and tiled,
* the median time of three ``predict_instances`` runs against ours.

Run: ``python benchmarks/stardist_tf_parity.py [--steps N] [--only NAME]``.
Figures are printed; nothing is asserted on time.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Official StarDist weights are Keras 2 files: prefer Keras 2 where it is installed.
# (Decided before TensorFlow is first imported, which reads this variable once.)
if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def _tensorflow_stardist():
    """Import TensorFlow's StarDist, or return the reason it is unavailable."""
    try:
        import stardist.models  # noqa: F401
        import tensorflow  # noqa: F401
        from csbdeep.utils.tf import IS_KERAS_3_PLUS
    except Exception as exc:
        return f"TensorFlow StarDist does not import here ({type(exc).__name__}: {exc})"
    if IS_KERAS_3_PLUS:
        return ("TensorFlow runs Keras 3, whose weight files differ from the Keras 2 files of official "
                "StarDist models; install 'tf_keras' so this check writes official-style folders")
    return None


def _median_time(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _data_2d(n_channels: int):
    from csbdeep.utils import normalize
    from stardist.data import test_image_nuclei_2d

    img, mask = test_image_nuclei_2d(return_mask=True)
    x = normalize(img.astype(np.float32), 1, 99.8).astype(np.float32)
    if n_channels == 3:
        # A three-channel stand-in for H&E: distinct but correlated channels.
        x = np.stack([x, 1.0 - x, np.sqrt(np.clip(x, 0, None))], axis=-1).astype(np.float32)
    half = x.shape[1] // 2
    train = ([x[:, :half]], [mask[:, :half]])
    val = ([x[:, half:]], [mask[:, half:]])
    return x, train, val


def _data_3d():
    from csbdeep.utils import normalize
    from stardist.data import test_image_nuclei_3d

    img, mask = test_image_nuclei_3d(return_mask=True)
    x = normalize(img.astype(np.float32), 1, 99.8).astype(np.float32)
    # The sample volume is small; mirror it 2 x 2 in Y and X so that tiling has room.
    wide = np.concatenate([x, x[:, :, ::-1]], axis=2)
    wide = np.concatenate([wide, wide[:, ::-1]], axis=1)
    return np.ascontiguousarray(wide), ([x], [mask]), ([x], [mask])


def _build_and_train(name: str, basedir: Path, steps: int):
    """A TensorFlow StarDist model of shape ``name``, trained for ``steps`` steps and saved."""
    from stardist import Rays_GoldenSpiral, calculate_extents
    from stardist.models import Config2D, Config3D, StarDist2D, StarDist3D

    # No checkpoint or learning-rate callbacks: under TensorFlow 2.16+ csbdeep may pick them
    # from Keras 3, which refuses Keras 2 file names; the weights are saved below instead.
    common = dict(train_epochs=1, train_steps_per_epoch=steps, train_learning_rate=1e-3,
                  train_tensorboard=False, train_batch_size=2, train_checkpoint=None,
                  train_checkpoint_last=None, train_checkpoint_epoch=None, train_reduce_lr=None)
    if name.startswith("2D"):
        n_ch = 3 if name == "2D_versatile_he" else 1
        image, train, val = _data_2d(n_ch)
        config = Config2D(n_rays=32, grid=(2, 2), unet_n_depth=3, n_channel_in=n_ch,
                          train_patch_size=(128, 128), **common)
        model = StarDist2D(config, name=name, basedir=str(basedir))
    else:
        image, train, val = _data_3d()
        extents = calculate_extents(train[1][0])
        anisotropy = tuple(float(np.max(extents) / e) for e in extents)
        grid = tuple(1 if a > 1.5 else 2 for a in anisotropy)
        rays = Rays_GoldenSpiral(96, anisotropy=anisotropy)
        backbone = "resnet" if name == "3D_resnet" else "unet"
        config = Config3D(rays=rays, grid=grid, anisotropy=anisotropy, n_channel_in=1, backbone=backbone,
                          train_patch_size=(16, 48, 48), **common)
        model = StarDist3D(config, name=name, basedir=str(basedir))
    model.train(train[0], train[1], validation_data=val, epochs=1, steps_per_epoch=steps)
    folder = basedir / name
    model.keras_model.save_weights(str(folder / "weights_best.h5"))
    return model, folder, image


def _compare(name: str, basedir: Path, steps: int, device) -> dict:
    from stardist.matching import matching

    from napari_dlmicro.core.models.stardist.folder import load_official
    from napari_dlmicro.core.runtime.cancel import NEVER
    from napari_dlmicro.core.runtime.events import run_to_end

    t0 = time.perf_counter()
    model, folder, image = _build_and_train(name, basedir, steps)
    train_s = time.perf_counter() - t0
    ndim = model.config.n_dim
    axes = ("YX" if ndim == 2 else "ZYX") + ("C" if image.ndim > ndim else "")
    ours_in = image if image.ndim > ndim else image[..., None]

    # Raw outputs: TensorFlow pads the end of each axis (reflect) to div_by; so do we.
    prob_tf, dist_tf = model.predict(image, axes=axes)
    # A threshold that always leaves objects, however short the training was, and
    # at most about 2000 candidates, so that NMS (3D NMS above all) stays quick.
    prob_thresh = float(min(0.5, np.quantile(prob_tf, max(0.9, 1 - 2000 / prob_tf.size))))
    nms_thresh = 0.4
    (folder / "thresholds.json").write_text(json.dumps({"prob": prob_thresh, "nms": nms_thresh}))

    seg = load_official(folder, device)
    from napari_dlmicro.core.data.tiling import pad_to_multiple

    padded = pad_to_multiple(ours_in, seg.net.config.div_by)
    prob_ours, dist_ours = seg.forward(padded)
    crop = tuple(slice(0, s) for s in prob_tf.shape)
    # StarDist's predict() clips distances at 1e-3 (as its instance prediction does).
    prob_ours, dist_ours = prob_ours[crop], np.maximum(dist_ours[crop], 1e-3)

    res = {
        "name": name,
        "train_s": train_s,
        "prob_thresh": prob_thresh,
        "max_prob_diff": float(np.abs(prob_ours - prob_tf).max()),
        "max_dist_diff": float(np.abs(dist_ours - dist_tf).max()),
        "max_dist": float(np.abs(dist_tf).max()),
    }
    settings = {"prob_thresh": prob_thresh, "nms_thresh": nms_thresh}

    def tf_labels(n_tiles=None):
        return model.predict_instances(image, axes=axes, prob_thresh=prob_thresh, nms_thresh=nms_thresh,
                                       n_tiles=n_tiles, show_tile_progress=False)[0]

    def our_labels(tile=None):
        seg._cache = None  # time the network too, not only NMS
        return run_to_end(seg.segment(ours_in, settings, NEVER, tile=tile))

    def compare_labels(a, b, prefix):
        m = matching(a, b, thresh=0.5)
        res[f"{prefix}_n_tf"] = int(len(np.unique(a)) - (0 in a))
        res[f"{prefix}_n_ours"] = int(len(np.unique(b)) - (0 in b))
        res[f"{prefix}_f1"] = float(m.f1)
        res[f"{prefix}_same_pixels"] = float(np.mean(a == b))

    lab_tf, lab_ours = tf_labels(), our_labels()
    compare_labels(lab_tf, lab_ours, "full")
    # Our ``tile`` is the core of each tile; each is read with the receptive field around it.
    if ndim == 2:
        n_tiles, tile = (2, 2), 128
    else:
        n_tiles, tile = (1, 2, 2), 32
    if image.ndim > ndim:
        n_tiles += (1,)  # the channel axis is not tiled
    lab_tf_tiled, lab_ours_tiled = tf_labels(n_tiles), our_labels(tile)
    compare_labels(lab_tf_tiled, lab_ours_tiled, "tiled")
    res["tiled_tf_vs_untiled_f1"] = float(matching(lab_tf, lab_tf_tiled, thresh=0.5).f1)
    res["tiled_ours_vs_untiled_f1"] = float(matching(lab_ours, lab_ours_tiled, thresh=0.5).f1)
    res["n_tiles_ours"] = len(seg._plan(padded.shape[:-1], tile))
    res["tile_args"] = f"TF n_tiles={n_tiles}, ours tile={tile}"

    res["time_tf_s"] = _median_time(tf_labels)
    res["time_ours_s"] = _median_time(our_labels)
    res["time_ratio"] = res["time_ours_s"] / res["time_tf_s"]
    res["image_shape"] = tuple(image.shape)
    return res


def _print(res: dict) -> None:
    print(f"\n== {res['name']}  image {res['image_shape']}  (TF training {res['train_s']:.0f} s, "
          f"prob_thresh {res['prob_thresh']:.3f})")
    print(f"  raw outputs : max |prob diff| {res['max_prob_diff']:.2e}   "
          f"max |dist diff| {res['max_dist_diff']:.2e} (dist up to {res['max_dist']:.1f})")
    for kind in ("full", "tiled"):
        print(f"  labels {kind:5s}: objects TF {res[f'{kind}_n_tf']:4d}  ours {res[f'{kind}_n_ours']:4d}   "
              f"F1@0.5 {res[f'{kind}_f1']:.4f}   identical pixels {res[f'{kind}_same_pixels']:.5f}")
    print(f"  tiled ({res['tile_args']}, ours {res['n_tiles_ours']} tiles): F1 against the untiled labels "
          f"TF {res['tiled_tf_vs_untiled_f1']:.4f}  ours {res['tiled_ours_vs_untiled_f1']:.4f}")
    print(f"  predict_instances: TF {res['time_tf_s']:.3f} s  ours {res['time_ours_s']:.3f} s  "
          f"ratio ours/TF {res['time_ratio']:.2f}")


CONFIGS = ("2D_versatile_fluo", "2D_versatile_he", "3D_resnet", "3D_unet")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="TensorFlow training steps per model")
    parser.add_argument("--only", choices=CONFIGS, action="append", help="run only these shapes")
    args = parser.parse_args(argv)

    why = _tensorflow_stardist()
    if why:
        print(f"skipped: {why}")
        return 0
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    device = torch.device("cpu")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or CONFIGS:
            res = _compare(name, Path(tmp), args.steps, device)
            _print(res)
            results.append(res)
    print("\nsummary (F1 untiled / tiled, time ratio ours/TF):")
    for r in results:
        print(f"  {r['name']:18s} {r['full_f1']:.4f} / {r['tiled_f1']:.4f}   {r['time_ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
