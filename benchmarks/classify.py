"""Object classification benchmark: accuracy against labelled objects, "Suggest" against random picks, speed.

Two data sets that ship in packages, each with a class per object derived
reproducibly from a measurable property (the classifiers never see that
property directly; objects near a class boundary are left out, so the
ground truth has a margin):

- ``ihc``: scikit-image's immunohistochemistry image (512x512 RGB, DAB and
  haematoxylin). Nuclei are segmented classically from the haematoxylin
  channel of a colour deconvolution (``rgb2hed``; Gaussian sigma 1, Otsu,
  opening, watershed on the distance transform). A nucleus is *positive*
  when the mean DAB within 4 pixels of it (its own pixels and a ring, the
  membrane stain of the tumour cells) exceeds 1.05x the Otsu threshold of
  those means over all nuclei, *negative* below 0.95x; the rest are left out.
- ``nuclei``: StarDist's bundled DSB 2018 nuclei image with its ground-truth
  labels; three classes by area (small, medium, large: below, between and
  above the terciles), nuclei within 3 % of a tercile left out.

For each seed a stratified 30 % of the classed objects is the test set; the
labels come from the rest. Printed:

1. accuracy on the test set against labelled objects per class (5, 10, 20,
   50 where the pool has them), fast (random forest) and deep (ResNet-18 on
   object crops), random picks, mean and spread over seeds; the random
   forest against histogram gradient boosting on the same picks;
2. "Suggest" (uncertainty sampling, margin and entropy) against random picks
   at the same number of labels: one random object per class to start, then
   the least certain objects, about a tenth more labels a round;
3. the fast classifier's retrain-and-repredict time for 1,000 and 10,000
   objects (the nuclei image tiled), and the time to measure them.

The README's figures were run on 2 shared CPU cores at load 10-12 (other
processes training), the deep classifier from scratch (ImageNet weights
cannot be downloaded there), one minute a run, as::

    python benchmarks/classify.py --seeds 5 --deep-seeds 2 --deep-minutes 1.0 --data nuclei
    python benchmarks/classify.py --seeds 5 --deep-seeds 2 --deep-minutes 1.0 --data ihc --skip-speed

Timings are printed, never asserted; the deep figures depend on its budget
and on how many steps the machine gives it in that time.
"""
from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_dlmicro.core.models.classifier.classes import make_classes
from napari_dlmicro.core.models.classifier.data import LabelledImage, classifier_data
from napari_dlmicro.core.models.classifier.fast import fit_matrix
from napari_dlmicro.core.models.classifier.features import ObjectFeatures, object_features
from napari_dlmicro.core.models.classifier.settings import ClassifierTraining
from napari_dlmicro.core.models.classifier.train import train_deep
from napari_dlmicro.core.models.classifier.uncertainty import uncertainty
from napari_dlmicro.core.runtime.events import run_to_end


@dataclass
class DataSet:
    """An image, its objects and the class of each classed object."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    truth: dict[int, str]
    classes: tuple[str, ...]
    note: str


def ihc() -> DataSet:
    """Nuclei of scikit-image's IHC image, positive or negative by the DAB around them (see the module notes)."""
    from skimage import color, data, feature, filters, measure, morphology, segmentation

    rgb = data.immunohistochemistry()
    hed = color.rgb2hed(rgb)
    h, dab = hed[..., 0], hed[..., 2]
    smooth = filters.gaussian(h, 1.0)
    fg = morphology.opening(smooth > filters.threshold_otsu(smooth), morphology.disk(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        fg = ndi.binary_fill_holes(morphology.remove_small_objects(fg, 20))
        dist = ndi.distance_transform_edt(fg)
        peaks = feature.peak_local_max(filters.gaussian(dist, 1.0), min_distance=4, labels=measure.label(fg),
                                       exclude_border=False)
        markers = np.zeros(fg.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        labels = morphology.remove_small_objects(segmentation.watershed(-dist, markers, mask=fg), 20)
    labels = segmentation.relabel_sequential(labels)[0].astype(np.int32)
    grown = segmentation.expand_labels(labels, 4)
    ids = np.arange(1, labels.max() + 1)
    mean_dab = ndi.mean(dab, grown, ids)
    t = filters.threshold_otsu(mean_dab)
    truth = {int(i): ("positive" if m > 1.05 * t else "negative") for i, m in zip(ids, mean_dab)
             if m > 1.05 * t or m < 0.95 * t}
    return DataSet("ihc", rgb, labels, truth, ("negative", "positive"),
                   f"{labels.max()} nuclei (haematoxylin, watershed); DAB within 4 px vs Otsu {t:.4f} +-5 %")


def nuclei() -> DataSet:
    """StarDist's nuclei sample, three classes by area (see the module notes)."""
    from stardist.data import test_image_nuclei_2d

    image, labels = test_image_nuclei_2d(return_mask=True)
    ids, area = np.unique(labels[labels > 0], return_counts=True)
    lo, hi = np.percentile(area, [100 / 3, 200 / 3])
    near = (np.abs(area - lo) < 0.03 * lo) | (np.abs(area - hi) < 0.03 * hi)
    names = np.where(area < lo, "small", np.where(area < hi, "medium", "large"))
    truth = {int(i): str(n) for i, n, x in zip(ids, names, near) if not x}
    return DataSet("nuclei", image, labels.astype(np.int32), truth, ("small", "medium", "large"),
                   f"{len(ids)} nuclei (ground truth); area terciles {lo:.0f}, {hi:.0f} px +-3 %")


def split(ds: DataSet, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labelling pool ids, test ids): 30 % of each class for the test."""
    rng = np.random.default_rng(seed)
    pool, test = [], []
    for c in ds.classes:
        ids = rng.permutation([k for k, v in ds.truth.items() if v == c])
        n_test = int(round(0.3 * len(ids)))
        test += list(ids[:n_test])
        pool += list(ids[n_test:])
    return np.array(sorted(pool)), np.array(sorted(test))


def y_of(ds: DataSet, ids) -> np.ndarray:
    return np.array([ds.classes.index(ds.truth[int(i)]) for i in ids])


def random_picks(ds: DataSet, pool: np.ndarray, per_class: int, seed: int) -> np.ndarray | None:
    rng = np.random.default_rng(1000 + seed)
    out = []
    for c in ds.classes:
        ids = [i for i in pool if ds.truth[int(i)] == c]
        if len(ids) < per_class:
            return None
        out += list(rng.choice(ids, per_class, replace=False))
    return np.array(sorted(out))


def fast_accuracy(ds: DataSet, f: ObjectFeatures, picked: np.ndarray, test: np.ndarray, seed: int) -> float:
    classes = make_classes(ds.classes)
    model = fit_matrix(f.values[f.rows(picked)], y_of(ds, picked), classes, f, seed=seed)
    p = model.probabilities(f.values[f.rows(test)])
    return float(np.mean(p.argmax(1) == y_of(ds, test)))


def gbm_accuracy(ds: DataSet, f: ObjectFeatures, picked: np.ndarray, test: np.ndarray, seed: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    n = len(picked)
    model = HistGradientBoostingClassifier(max_iter=100, min_samples_leaf=max(1, min(20, n // 10)),
                                           early_stopping=False, random_state=seed)
    model.fit(f.values[f.rows(picked)], y_of(ds, picked))
    return float(np.mean(model.predict(f.values[f.rows(test)]) == y_of(ds, test)))


def deep_accuracy(ds: DataSet, picked: np.ndarray, test: np.ndarray, seed: int, minutes: float, crop: int) -> float:
    table = {int(i): ds.truth[int(i)] for i in picked}
    data = classifier_data([LabelledImage(ds.name, ds.image, ds.labels, table)], list(ds.classes))
    s = ClassifierTraining(classifier="deep", minutes=minutes, epochs=None, crop=crop, batch=16, seed=seed,
                           pretrained=False)
    result = run_to_end(train_deep(data, s))
    pred = result.model.predict(ds.image, ds.labels)
    rows = np.searchsorted(pred.ids, test)
    return float(np.mean(pred.index[rows] == y_of(ds, test)))


def active_curve(ds: DataSet, f: ObjectFeatures, pool: np.ndarray, test: np.ndarray, totals: list[int],
                 method: str, seed: int) -> dict[int, float]:
    """Accuracy at each total number of labels: one per class at random, then the least certain objects."""
    rng = np.random.default_rng(2000 + seed)
    classes = make_classes(ds.classes)
    labelled = [int(rng.choice([i for i in pool if ds.truth[int(i)] == c])) for c in ds.classes]
    out: dict[int, float] = {}
    pool_rows, test_rows = f.rows(pool), f.rows(test)
    while True:
        picked = np.array(sorted(labelled))
        model = fit_matrix(f.values[f.rows(picked)], y_of(ds, picked), classes, f, seed=seed)
        if len(labelled) in totals:
            out[len(labelled)] = float(np.mean(model.probabilities(f.values[test_rows]).argmax(1) == y_of(ds, test)))
        if len(labelled) >= max(totals):
            return out
        free = np.setdiff1d(np.arange(len(pool)), np.searchsorted(pool, picked))
        u = uncertainty(model.probabilities(f.values[pool_rows[free]]), method)
        step = max(1, len(labelled) // 10)
        nxt = min(t for t in totals if t > len(labelled))
        step = min(step, nxt - len(labelled))  # land on every reported total
        labelled += [int(pool[free[j]]) for j in np.argsort(-u, kind="stable")[:step]]


def mean_sd(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}"


def accuracy_tables(ds: DataSet, f: ObjectFeatures, args) -> None:
    print(f"\n== {ds.name}: {ds.note}; classed {len(ds.truth)}: "
          + ", ".join(f"{c} {sum(v == c for v in ds.truth.values())}" for c in ds.classes))
    rows = {}
    for n in args.counts:
        fast, gbm, deep = [], [], []
        for seed in range(args.seeds):
            pool, test = split(ds, seed)
            picked = random_picks(ds, pool, n, seed)
            if picked is None:
                continue
            fast.append(fast_accuracy(ds, f, picked, test, seed))
            gbm.append(gbm_accuracy(ds, f, picked, test, seed))
            if seed < args.deep_seeds and not args.skip_deep:
                deep.append(deep_accuracy(ds, picked, test, seed, args.deep_minutes, args.deep_crop))
        rows[n] = (fast, gbm, deep)
        print(f"{n:>3} per class, random picks | fast {mean_sd(fast)} | gradient boosting {mean_sd(gbm)} | "
              f"deep {mean_sd(deep)} ({len(fast)} seeds, deep {len(deep)})", flush=True)
    if args.skip_suggest:
        return
    print("Suggest against random picks (fast classifier), same number of labels in total:")
    k = len(ds.classes)
    found: dict[str, dict[int, list[float]]] = {m: {} for m in ("margin", "entropy")}
    for seed in range(args.seeds):
        pool, test = split(ds, seed)
        totals = [k * n for n in args.counts if k * n <= len(pool)]
        for method, by_total in found.items():
            for total, acc in active_curve(ds, f, pool, test, totals, method, seed).items():
                by_total.setdefault(total, []).append(acc)
    for n in args.counts:
        print(f"{k * n:>4} labels ({n} per class) | random {mean_sd(rows[n][0])} | suggest margin "
              f"{mean_sd(found['margin'].get(k * n, []))} | suggest entropy {mean_sd(found['entropy'].get(k * n, []))}",
              flush=True)


def tiled(reps_y: int, reps_x: int):
    from stardist.data import test_image_nuclei_2d

    image, labels = test_image_nuclei_2d(return_mask=True)
    n = int(labels.max())
    big = np.block([[np.where(labels > 0, labels + n * (i * reps_x + j), 0) for j in range(reps_x)]
                    for i in range(reps_y)])
    return np.tile(image, (reps_y, reps_x)), big


def speed() -> None:
    print("\n== fast classifier: retrain and repredict (nuclei image tiled), median of 3")
    from sklearn.ensemble import HistGradientBoostingClassifier

    for reps in ((2, 4), (8, 10)):
        image, labels = tiled(*reps)
        t0 = time.perf_counter()
        f = object_features(image, labels)
        t_feat = time.perf_counter() - t0
        y_all = (f.sizes > np.median(f.sizes)).astype(int)
        rng = np.random.default_rng(0)
        classes = make_classes(["small", "large"])
        for n_labelled in (40, 200):
            picked = np.concatenate([rng.choice(np.flatnonzero(y_all == c), n_labelled // 2, replace=False)
                                     for c in (0, 1)])
            fit_t, pred_t, numpy_t, gbm_t = [], [], [], []
            for _ in range(3):
                t0 = time.perf_counter()
                model = fit_matrix(f.values[picked], y_all[picked], classes, f)
                t1 = time.perf_counter()
                model.predict_features(f)
                t2 = time.perf_counter()
                model.forest.predict_proba(f.values)  # a loaded classifier predicts with numpy
                t3 = time.perf_counter()
                HistGradientBoostingClassifier(max_iter=100, min_samples_leaf=max(1, min(20, n_labelled // 10)),
                                               early_stopping=False).fit(f.values[picked], y_all[picked]
                                                                         ).predict_proba(f.values)
                t4 = time.perf_counter()
                fit_t.append(t1 - t0)
                pred_t.append(t2 - t1)
                numpy_t.append(t3 - t2)
                gbm_t.append(t4 - t3)
            med = np.median
            print(f"{len(f.ids):>6} objects, {n_labelled:>3} labelled: refit {med(fit_t):.3f} s + repredict "
                  f"{med(pred_t):.3f} s = {med(fit_t) + med(pred_t):.3f} s (loaded forest, numpy: "
                  f"{med(numpy_t):.3f} s, {med(numpy_t) / med(pred_t):.1f}x; gradient boosting fit+predict "
                  f"{med(gbm_t):.3f} s); "
                  f"features once per segmentation: {t_feat:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--deep-seeds", type=int, default=3)
    parser.add_argument("--deep-minutes", type=float, default=0.5)
    parser.add_argument("--deep-crop", type=int, default=48)
    parser.add_argument("--counts", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--skip-deep", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-suggest", action="store_true")
    parser.add_argument("--data", nargs="+", default=["ihc", "nuclei"])
    args = parser.parse_args()
    for name in args.data:
        ds = {"ihc": ihc, "nuclei": nuclei}[name]()
        accuracy_tables(ds, object_features(ds.image, ds.labels), args)
    if not args.skip_speed:
        speed()


if __name__ == "__main__":
    main()
