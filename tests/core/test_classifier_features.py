"""Per-object features: shape as scikit-image measures it, intensity and texture per channel, 3D, cancelling."""
import numpy as np
import pytest
from skimage.measure import regionprops_table

from napari_dlmicro.core.data.normalize import normalized
from napari_dlmicro.core.errors import Cancelled
from napari_dlmicro.core.models.classifier.features import feature_names, features_job, object_features
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Progress, run_to_end


def test_shape_features_agree_with_regionprops_on_the_nuclei_sample(nuclei):
    img, gt = nuclei
    f = object_features(img, gt)
    ref = regionprops_table(gt, properties=("label", "area", "perimeter", "eccentricity", "extent",
                                            "axis_major_length", "axis_minor_length", "centroid", "solidity"))
    tab = f.table()
    assert np.array_equal(tab["label"], ref["label"])
    for ours, theirs in [("shape_area", "area"), ("shape_perimeter", "perimeter"),
                         ("shape_eccentricity", "eccentricity"), ("shape_extent", "extent"),
                         ("shape_major_axis", "axis_major_length"), ("shape_minor_axis", "axis_minor_length")]:
        np.testing.assert_allclose(tab[ours], ref[theirs], rtol=1e-4, atol=1e-4, err_msg=ours)
    # solidity over the hull of the pixel squares, not of the pixel centres: close, slightly lower
    assert np.corrcoef(tab["shape_solidity"], ref["solidity"])[0, 1] > 0.95
    np.testing.assert_allclose(f.centroids, np.stack([ref["centroid-0"], ref["centroid-1"]], 1), atol=1e-9)
    assert np.isfinite(f.values).all() and f.values.dtype == np.float32


def test_intensity_features_are_per_channel_and_normalised(make_two_kinds):
    image, labels, truth = make_two_kinds(channels=2)
    f = object_features(image, labels)
    assert f.n_channels == 2 and f.names == feature_names(2, 2)
    tab = f.table()
    bright = np.array([truth[int(i)] == "bright" for i in f.ids])
    for c in (0, 1):
        mean = tab[f"mean_c{c}"]
        assert mean[bright].min() > mean[~bright].max()  # brightness separates the kinds
        assert (tab[f"min_c{c}"] <= tab[f"median_c{c}"]).all() and (tab[f"median_c{c}"] <= tab[f"max_c{c}"]).all()
        assert (tab[f"contrast_c{c}"] > 0).all()  # every disc is brighter than its ring
    # channel-first input is the same image
    again = object_features(np.moveaxis(image, -1, 0), labels)
    np.testing.assert_array_equal(again.values, f.values)


def test_median_is_numpys_percentile(make_two_kinds):
    image, labels, _ = make_two_kinds()
    f = object_features(image, labels)
    norm = normalized(image, 2)
    tab = f.table()
    for k in (1, 2, 7):
        row = int(np.flatnonzero(f.ids == k)[0])
        assert tab["median_c0"][row] == pytest.approx(np.median(norm[labels == k]), abs=1e-6)
        assert tab["p90_c0"][row] == pytest.approx(np.percentile(norm[labels == k], 90), abs=1e-6)


def test_3d_objects_are_measured():
    labels = np.zeros((12, 32, 32), np.int32)
    labels[2:6, 4:10, 4:10] = 1
    labels[5:11, 15:30, 18:24] = 2
    image = labels.astype(np.float32) + np.random.default_rng(0).normal(0, 0.1, labels.shape).astype(np.float32)
    f = object_features(image, labels)
    tab = f.table()
    assert f.ndim == 3 and "shape_perimeter" not in tab
    assert tab["shape_volume"].tolist() == [4 * 6 * 6, 6 * 15 * 6]
    assert tab["shape_solidity"][0] == pytest.approx(1.0) and tab["shape_elongation"][1] > 2


def test_features_report_progress_and_stop_when_cancelled(nuclei):
    img, gt = nuclei
    events = []
    run_to_end(features_job(img, gt), events.append)
    assert any(isinstance(e, Progress) for e in events) and events[-1].done == events[-1].total
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_to_end(features_job(img, gt, token))
