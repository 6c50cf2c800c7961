"""Parity and speed of our PyTorch StarDist against StarDist's own TensorFlow implementation.

Needs a Python environment with tensorflow, stardist and csbdeep (and, for
TensorFlow 2.16 or newer, the ``tf_keras`` package: official StarDist model
folders hold Keras 2 weights, which only Keras 2 writes). Where those do not
import, the script says why and exits with status 0.

For each network shape that StarDist ships or builds by default

* ``2D_versatile_fluo`` shape (32 rays, grid 2, U-Net depth 3, one channel),
* ``2D_versatile_he`` shape (the same with three input channels),
* 3D default (ResNet backbone, anisotropic grid, 96 golden-spiral rays),
* 3D with the U-Net backbone (trained longer: it needs more steps to find objects),

it trains a StarDist model with TensorFlow on stardist's nuclei sample (so that
its predictions hold real objects), lets StarDist save the folder
(``config.json``, ``thresholds.json``, ``weights_best.h5``), loads that folder
with :func:`napari_dlmicro.core.models.stardist.folder.load_official` and
compares, on the image:

* the raw network outputs (max |prob diff|, max |dist diff|),
* the labels from ``predict_instances`` and from our ``segment`` on each engine
  (torch, ONNX Runtime, OpenVINO) with the same thresholds: object counts, F1 at
  IoU 0.5 (``stardist.matching``) and the fraction of identical pixels, untiled
  and tiled,
* time, end to end (network, NMS, labels): ``predict_instances`` against ours on
  each engine, interleaved in one process, median of ``--repeats``; every
  repetition segments a slightly different image (faint noise of its own added),
  so no side ever reuses a network output (our segmenter keeps the candidates of
  an image it has seen; the script counts the timed runs that reused one),
* time of the network alone: ours on each engine against today's torch path,
* with ``--processes``, the same end-to-end times in separate processes, one per
  side (a user runs one or the other; ``auto`` is our default engine choice):
  each loads the model, segments once to warm up (reported apart), then segments
  ``--repeats`` different images, from the raw image as a user would: TF after
  csbdeep's ``normalize`` (percentiles 1 and 99.8), ours through the
  segmentation job (which normalises the same way).

Ratios are TF's time over ours (above 1: ours is faster). Run:
``python benchmarks/stardist_tf_parity.py [--steps N] [--repeats R] [--only NAME] [--processes] [--models DIR]``
(``--models`` keeps the trained TensorFlow models for the next run).
Figures are printed; nothing is asserted on time. The README's figures come
from a 2-core machine shared with other training runs: read the
ratios of one run, not its seconds.
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


ENGINES = ("torch", "onnxruntime", "openvino")
MAX_CANDIDATES = {2: 2000, 3: 1000}
# The 3D U-Net needs more steps than the others before its predictions hold objects (at the default it found none).
STEP_FACTOR = {"3D_unet": 5}


def _interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each ``run(i)`` over ``repeats`` rounds, each round running every side in turn."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeats):
        for name, run in runs.items():
            t0 = time.perf_counter()
            run(i)
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def _between_values(prob: np.ndarray, threshold: float) -> float:
    """``threshold`` moved half way between the two probabilities around it.

    A quantile lands on (or next to) a probability of the image itself; a candidate
    exactly at the threshold would then be kept or dropped by float rounding (1e-7
    between TensorFlow, torch, ONNX Runtime and OpenVINO), which compares rounding,
    not implementations.
    """
    values = np.unique(prob.ravel())
    i = int(np.clip(np.searchsorted(values, threshold), 1, len(values) - 1))
    return float((values[i - 1] + values[i]) / 2)


def _variants(image: np.ndarray, n: int) -> list[np.ndarray]:
    """``n`` slightly different copies of ``image`` (so no side can reuse a network output).

    Each adds its own faint noise (1e-3 of the image's spread): unlike a scaled copy, it
    survives percentile normalisation, so the network's input differs too.
    """
    rng = np.random.default_rng(0)
    spread = np.float32(1e-3 * float(np.std(image)))
    return [np.ascontiguousarray(image + spread * rng.standard_normal(image.shape).astype(np.float32))
            for _ in range(n)]


def _threshold(prob: np.ndarray, max_candidates: int) -> float:
    """0.5, or higher where 0.5 would leave more than ``max_candidates`` candidates, or lower where it leaves none.

    The cap keeps NMS (3D NMS above all) to seconds whatever the training left; the
    fallback finds objects however short the training was.
    """
    q = float(np.quantile(prob, 1 - min(1.0, max_candidates / prob.size)))
    t = max(q, 0.5) if float(prob.max()) > max(q, 0.5) else q
    return _between_values(prob, t)


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
    """A TensorFlow StarDist model of shape ``name``, trained for ``steps`` steps (more for some shapes) and saved."""
    steps = steps * STEP_FACTOR.get(name, 1)
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
    folder = basedir / name
    done = folder / "trained_steps.txt"
    if done.is_file() and done.read_text().strip() == str(steps) and (folder / "weights_best.h5").is_file():
        # trained before into this --models folder with as many steps: reuse the weights
        model = type(model)(None, name=name, basedir=str(basedir))
        model.load_weights("weights_best.h5")
        return model, folder, image
    model.train(train[0], train[1], validation_data=val, epochs=1, steps_per_epoch=steps)
    model.keras_model.save_weights(str(folder / "weights_best.h5"))
    done.write_text(str(steps))
    return model, folder, image


def _compare(name: str, basedir: Path, steps: int, repeats: int, device) -> dict:
    from stardist.matching import matching

    from napari_dlmicro.core.data.tiling import pad_to_multiple
    from napari_dlmicro.core.models.stardist.folder import load_official
    from napari_dlmicro.core.runtime.cancel import NEVER
    from napari_dlmicro.core.runtime.events import run_to_end

    t0 = time.perf_counter()
    model, folder, image = _build_and_train(name, basedir, steps)
    train_s = time.perf_counter() - t0
    ndim = model.config.n_dim
    axes = ("YX" if ndim == 2 else "ZYX") + ("C" if image.ndim > ndim else "")
    with_channel = (lambda im: im if im.ndim > ndim else im[..., None])

    # Raw outputs: TensorFlow pads the end of each axis (reflect) to div_by; so do we.
    prob_tf, dist_tf = model.predict(image, axes=axes)
    # A threshold that always leaves objects, however short the training was, and at most
    # about 2000 candidates in 2D, 1000 in 3D (whose NMS takes seconds for a thousand).
    prob_thresh = _threshold(prob_tf, MAX_CANDIDATES[ndim])
    nms_thresh = 0.4
    (folder / "thresholds.json").write_text(json.dumps({"prob": prob_thresh, "nms": nms_thresh}))

    segs = {e: load_official(folder, device).use_engine(e) for e in ENGINES}
    padded = pad_to_multiple(with_channel(image), segs["torch"].net.config.div_by)
    crop = tuple(slice(0, s) for s in prob_tf.shape)
    res = {"name": name, "train_s": train_s, "prob_thresh": prob_thresh, "image_shape": tuple(image.shape),
           "steps": steps * STEP_FACTOR.get(name, 1)}
    for e, seg in segs.items():
        prob_ours, dist_ours = seg.forward(padded)
        # StarDist's predict() clips distances at 1e-3 (as its instance prediction does).
        prob_ours, dist_ours = prob_ours[crop], np.maximum(dist_ours[crop], 1e-3)
        res[f"{e}_max_prob_diff"] = float(np.abs(prob_ours - prob_tf).max())
        res[f"{e}_max_dist_diff"] = float(np.abs(dist_ours - dist_tf).max())
    res["max_dist"] = float(np.abs(dist_tf).max())
    settings = {"prob_thresh": prob_thresh, "nms_thresh": nms_thresh, "views": 1}

    def tf_labels(img, n_tiles=None):
        return model.predict_instances(img, axes=axes, prob_thresh=prob_thresh, nms_thresh=nms_thresh,
                                       n_tiles=n_tiles, show_tile_progress=False)[0]

    def our_labels(engine, img, tile=None):
        return run_to_end(segs[engine].segment(with_channel(img), settings, NEVER, tile=tile))

    n_tiles, tile = ((2, 2), 128) if ndim == 2 else ((1, 2, 2), 32)
    if image.ndim > ndim:
        n_tiles += (1,)  # the channel axis is not tiled
    lab_tf, lab_tf_tiled = tf_labels(image), tf_labels(image, n_tiles)
    res["tiled_tf_vs_untiled_f1"] = float(matching(lab_tf, lab_tf_tiled, thresh=0.5).f1)
    for e in ENGINES:
        for kind, a, b in (("full", lab_tf, our_labels(e, image)), ("tiled", lab_tf_tiled, our_labels(e, image, tile))):
            res[f"{e}_{kind}_n_tf"] = int(len(np.unique(a)) - (0 in a))
            res[f"{e}_{kind}_n_ours"] = int(len(np.unique(b)) - (0 in b))
            res[f"{e}_{kind}_f1"] = float(matching(a, b, thresh=0.5).f1)
            res[f"{e}_{kind}_same_pixels"] = float(np.mean(a == b))
    res["n_tiles_ours"] = len(segs["torch"]._plan(padded.shape[:-1], tile))
    res["tile_args"] = f"TF n_tiles={n_tiles}, ours tile={tile}"

    # End to end, interleaved; every repetition on an image no side has seen before.
    images = _variants(image, repeats)
    for e in ENGINES:  # warm up: ONNX export and sessions are made once, not per image
        our_labels(e, image * np.float32(0.5))
    tf_labels(image * np.float32(0.5))
    keys = {e: set() for e in ENGINES}

    def ours_uncached(engine, i):
        labels = our_labels(engine, images[i])
        keys[engine].add(segs[engine]._cache[0])  # the fingerprint of the image whose network output it holds
        return labels

    runs = {"tf": lambda i: tf_labels(images[i]), **{e: (lambda i, e=e: ours_uncached(e, i)) for e in ENGINES}}
    res["time"] = _interleaved(runs, repeats)
    # every timed run ran the network on an image of its own: as many fingerprints as runs
    res["cache_hits"] = sum(repeats - len(k) for k in keys.values())
    # The network alone: ours on each engine against today's torch path (and TF's predict, for reference).
    nets = {e: (lambda i, e=e: segs[e].forward(pad_to_multiple(with_channel(images[i]), segs[e].net.config.div_by)))
            for e in ENGINES}
    res["net_time"] = _interleaved({"tf_predict": lambda i: model.predict(images[i], axes=axes), **nets}, repeats)
    return res


def _print(res: dict) -> None:
    print(f"\n== {res['name']}  image {res['image_shape']}  (TF training {res['steps']} steps, {res['train_s']:.0f} s; "
          f"prob_thresh {res['prob_thresh']:.3f})")
    for e in ENGINES:
        print(f"  raw outputs {e:11s}: max |prob diff| {res[f'{e}_max_prob_diff']:.2e}   "
              f"max |dist diff| {res[f'{e}_max_dist_diff']:.2e} (dist up to {res['max_dist']:.1f})")
        for kind in ("full", "tiled"):
            print(f"  labels {e:11s} {kind:5s}: objects TF {res[f'{e}_{kind}_n_tf']:4d}  ours "
                  f"{res[f'{e}_{kind}_n_ours']:4d}   F1@0.5 {res[f'{e}_{kind}_f1']:.4f}   identical pixels "
                  f"{res[f'{e}_{kind}_same_pixels']:.5f}")
    print(f"  tiled ({res['tile_args']}, ours {res['n_tiles_ours']} tiles): TF tiled against TF untiled F1 "
          f"{res['tiled_tf_vs_untiled_f1']:.4f}")
    t = res["time"]
    print(f"  timed runs that reused a network output: {res['cache_hits']}")
    print("  end to end (median, interleaved): TF predict_instances " + f"{t['tf']:.3f} s; " + "; ".join(
        f"ours {e} {t[e]:.3f} s (TF/ours {t['tf'] / t[e]:.2f}x)" for e in ENGINES))
    n = res["net_time"]
    print("  network alone (median): " + "; ".join(
        f"{e} {n[e]:.3f} s ({n['torch'] / n[e]:.2f}x today's torch)" for e in ENGINES)
        + f"; TF predict {n['tf_predict']:.3f} s")


def _worker(side: str, folder: str, image_file: str, repeats: int) -> None:
    """One side in its own process: load, segment once (warm-up), then ``repeats`` different images."""
    image = np.load(image_file)
    cfg = json.loads((Path(folder) / "config.json").read_text())
    thresholds = json.loads((Path(folder) / "thresholds.json").read_text())
    ndim = int(cfg["n_dim"])
    axes = ("YX" if ndim == 2 else "ZYX") + ("C" if image.ndim > ndim else "")
    import torch

    t0 = time.perf_counter()
    if side == "tf":
        from csbdeep.utils import normalize
        from stardist.models import StarDist2D, StarDist3D

        kind = StarDist2D if ndim == 2 else StarDist3D
        model = kind(None, name=Path(folder).name, basedir=str(Path(folder).parent))
        # as stardist's own examples do (and as our job does): percentiles 1 and 99.8 of the whole image
        run = lambda im: model.predict_instances(normalize(im, 1, 99.8, axis=tuple(range(ndim))), axes=axes,
                                                 prob_thresh=thresholds["prob"], nms_thresh=thresholds["nms"],
                                                 show_tile_progress=False)[0]
    else:
        from napari_dlmicro.core.jobs.segment import segment
        from napari_dlmicro.core.models.stardist.folder import load_official

        seg = load_official(Path(folder), torch.device("cpu"))
        run = lambda im: segment(im, seg, axes=axes, engine=side, measure=False, tile=None,
                                 settings={"views": 1}).labels
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(image * np.float32(0.5))
    first = time.perf_counter() - t0
    times, keys, objects = [], set(), []
    for im in _variants(image, repeats):
        t0 = time.perf_counter()
        labels = run(im)
        times.append(time.perf_counter() - t0)
        objects.append(int(len(np.unique(labels)) - 1))
        if side != "tf":
            keys.add(seg._cache[0])
    print(json.dumps({"side": side, "load_s": loaded, "first_s": first, "median_s": float(np.median(times)),
                      "objects": objects, "cache_hits": 0 if side == "tf" else repeats - len(keys)}))


def _processes(name: str, folder: Path, image: np.ndarray, repeats: int) -> dict:
    import subprocess

    image_file = folder / "bench_image.npy"
    np.save(image_file, image)
    out = {}
    for side in ("tf",) + ENGINES + ("auto",):
        done = subprocess.run([sys.executable, __file__, "--worker", side, str(folder), str(image_file),
                               "--repeats", str(repeats)], capture_output=True, text=True, check=False)
        line = next((ln for ln in done.stdout.splitlines() if ln.startswith("{")), None)
        if line is None:
            print(f"  {side}: failed ({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'})")
            continue
        out[side] = json.loads(line)
    tf = out.get("tf", {}).get("median_s")
    print(f"  separate processes ({name}): " + "; ".join(
        f"{side} {r['median_s']:.3f} s" + (f" (TF/ours {tf / r['median_s']:.2f}x)" if tf and side != "tf" else "")
        + f" [load {r['load_s']:.1f} s, first {r['first_s']:.2f} s, objects {r['objects'][0]}, "
          f"cache hits {r['cache_hits']}]" for side, r in out.items()))
    return out


CONFIGS = ("2D_versatile_fluo", "2D_versatile_he", "3D_resnet", "3D_unet")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="TensorFlow training steps per model")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (each on another image)")
    parser.add_argument("--only", choices=CONFIGS, action="append", help="run only these shapes")
    parser.add_argument("--processes", action="store_true", help="also time each side in a process of its own")
    parser.add_argument("--models", type=Path, help="keep the trained TensorFlow models in this folder and reuse "
                        "them on the next run (default: a temporary folder)")
    parser.add_argument("--worker", nargs=3, metavar=("SIDE", "FOLDER", "IMAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    why = _tensorflow_stardist()
    if why:
        print(f"skipped: {why}")
        return 0
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.worker:
        _worker(*args.worker, args.repeats)
        return 0
    device = torch.device("cpu")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.models:
            args.models.mkdir(parents=True, exist_ok=True)
            tmp = str(args.models)
        for name in args.only or CONFIGS:
            res = _compare(name, Path(tmp), args.steps, args.repeats, device)
            _print(res)
            if args.processes:
                res["processes"] = _processes(name, Path(tmp) / name, _data_2d(3 if name.endswith("he") else 1)[0]
                                              if name.startswith("2D") else _data_3d()[0], args.repeats)
            results.append(res)
    print("\nsummary (F1 untiled / tiled against TF per engine; end to end TF/ours; network alone vs today's torch):")
    for r in results:
        f1 = "  ".join(f"{e} {r[f'{e}_full_f1']:.4f}/{r[f'{e}_tiled_f1']:.4f}" for e in ENGINES)
        speed = "  ".join(f"{e} {r['time']['tf'] / r['time'][e]:.2f}x" for e in ENGINES)
        net = "  ".join(f"{e} {r['net_time']['torch'] / r['net_time'][e]:.2f}x" for e in ENGINES[1:])
        print(f"  {r['name']:18s} F1 {f1}   TF/ours {speed}   network {net}")
        p = r.get("processes", {})
        if "tf" in p:
            print(f"  {'':18s} separate processes TF/ours " + "  ".join(
                f"{side} {p['tf']['median_s'] / p[side]['median_s']:.2f}x" for side in p if side != "tf"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
