"""StarDist training: it learns, checkpoints survive a cancel, the time budget holds, bad input is refused."""
import numpy as np
import pytest
import torch

from napari_dlmicro.core.data.normalize import normalize_percentile
from napari_dlmicro.core.data.training_sets import Pair
from napari_dlmicro.core.errors import Cancelled, UserError
from napari_dlmicro.core.jobs.train import train_job
from napari_dlmicro.core.models.stardist.folder import load_ours
from napari_dlmicro.core.models.stardist.settings import StarDistTraining
from napari_dlmicro.core.models.stardist.train import train_stardist
from napari_dlmicro.core.runtime.cancel import CancelToken
from napari_dlmicro.core.runtime.events import Metrics, run_to_end

SMALL = dict(depth=2, filters=16, patch=64, batch=4, lr=3e-3)


@pytest.fixture
def halves(nuclei):
    img, gt = nuclei
    x = normalize_percentile(img)
    return (x[:192, :192], gt[:192, :192]), (x[192:320, :192], gt[192:320, :192])


def test_short_run_improves_validation_over_untrained(halves, tmp_path):
    (x, y), (vx, vy) = halves
    s = StarDistTraining(**SMALL, steps=30, validate_every=30, optimize_thresholds=False)
    result = run_to_end(train_stardist([x], [y], [vx], [vy], s, save_to=tmp_path / "m"))
    first, last = result.history[0], result.history[-1]
    assert first["step"] == 0 and last["step"] == 30
    assert last["val_loss"] < 0.85 * first["val_loss"]
    assert load_ours(tmp_path / "m", result.model.device).net.config.n_rays == 32


def test_trained_model_beats_untrained_f1(trained_stardist, right_half):
    from napari_dlmicro.core.evaluation.segmentation import f1_at
    from napari_dlmicro.core.jobs.segment import segment
    from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
    from napari_dlmicro.core.models.stardist.train import build_network

    img, gt = right_half
    untrained = StarDistSegmenter(build_network(StarDistTraining(**SMALL), 2, 1)[0], name="untrained")
    trained = load_ours(trained_stardist, untrained.device)
    f1_trained = f1_at(segment(img, trained, measure=False).labels, gt)
    f1_untrained = f1_at(segment(img, untrained, settings={"prob_thresh": 0.9}, measure=False).labels, gt)
    assert f1_trained > f1_untrained + 0.3


def test_cancel_mid_epoch_keeps_a_loadable_best_model(halves, tmp_path):
    (x, y), (vx, vy) = halves
    token = CancelToken()

    def on_event(ev):
        if isinstance(ev, Metrics) and ev.step >= 15:
            token.cancel()

    s = StarDistTraining(**SMALL, steps=200, validate_every=10, optimize_thresholds=False)
    result = run_to_end(train_stardist([x], [y], [vx], [vy], s, token, save_to=tmp_path / "m"), on_event)
    assert result.stopped_early and result.history[-1]["step"] == 10
    assert load_ours(tmp_path / "m", result.model.device).info.name == "stardist"


def test_time_budget_is_honoured(halves, tmp_path, monkeypatch):
    """The loop stops when its (simulated) clock says the budget is spent, then validates and saves."""
    import itertools

    from napari_dlmicro.core.training import budget as shared

    clock = itertools.count(0.0, 0.25)  # every look at the clock: a quarter of a second later
    monkeypatch.setattr(shared.Budget, "elapsed", lambda self: next(clock))
    (x, y), (vx, vy) = halves
    s = StarDistTraining(**SMALL, minutes=0.1, optimize_thresholds=True)
    steps = []
    result = run_to_end(train_stardist([x], [y], [vx], [vy], s, save_to=tmp_path / "m"),
                        lambda e: steps.append(e.step) if isinstance(e, Metrics) else None)
    assert 0 < max(steps) < 24  # 6 s of budget at a few clock looks per step
    assert (tmp_path / "m" / "weights.safetensors").is_file() and result.history
    assert {"prob_thresh", "nms_thresh"} <= set(result.best)


def test_continuing_never_ends_worse_than_the_start(halves, trained_stardist, tmp_path):
    """Continued training that only makes the model worse keeps (and saves) the model it started from."""
    (x, y), (vx, vy) = halves
    start = load_ours(trained_stardist, torch.device("cpu"))
    s = StarDistTraining(**SMALL | {"lr": 5.0}, steps=10, validate_every=5, optimize_thresholds=False)
    result = run_to_end(train_stardist([x], [y], [vx], [vy], s, init=start, save_to=tmp_path / "m"))
    assert result.best["step"] == 0
    saved = load_ours(tmp_path / "m", torch.device("cpu"))
    for a, b in zip(saved.net.state_dict().values(), start.net.state_dict().values()):
        assert np.array_equal(a.numpy(), b.numpy())


def test_stop_before_the_first_step_saves_nothing(halves, tmp_path):
    (x, y), (vx, vy) = halves
    token = CancelToken()
    token.cancel()
    s = StarDistTraining(**SMALL, steps=50, validate_every=10)
    try:
        result = run_to_end(train_stardist([x], [y], [vx], [vy], s, token, save_to=tmp_path / "m"))
    except Cancelled:  # the cancel was seen while the trainer was being built (its setup outlasted one poll)
        result = None
    assert result is None or (result.stopped_early and result.folder is None)
    assert not (tmp_path / "m").exists()


def test_bad_training_input(halves, trained_stardist, tmp_path):
    (x, y), _ = halves
    with pytest.raises(UserError, match="patch size"):
        run_to_end(train_stardist([x[:32]], [y[:32]], settings=StarDistTraining(**SMALL)))
    with pytest.raises(UserError, match="differ"):
        run_to_end(train_stardist([x[:100]], [y], settings=StarDistTraining(**SMALL)))
    vol = np.stack([y, y])
    spec = {"epochs": 1, "patch": 64}
    with pytest.raises(UserError, match="2D model"):
        run_to_end(train_job("stardist", [Pair("v", np.stack([x, x]), vol)], spec, init=str(trained_stardist)))
    with pytest.raises(UserError, match="mixes"):
        run_to_end(train_job("stardist", [Pair("a", x, y), Pair("v", np.stack([x, x]), vol)], spec,
                             init=str(trained_stardist)))
    with pytest.raises(UserError, match="too few"):
        run_to_end(train_job("stardist", [Pair("a", x[:40, :40], y[:40, :40])], spec, init=str(trained_stardist)))


def test_3d_stardist_trains_and_segments(tmp_path):
    from napari_dlmicro.core.jobs.segment import segment

    rng = np.random.default_rng(0)
    lab = np.zeros((16, 64, 64), np.uint16)
    for k in range(12):
        z, y, x = rng.integers(4, 12), rng.integers(6, 58), rng.integers(6, 58)
        zz, yy, xx = np.ogrid[:16, :64, :64]
        lab[((zz - z) ** 2 / 9 + (yy - y) ** 2 / 25 + (xx - x) ** 2 / 25) < 1] = k + 1
    img = (lab > 0).astype(np.float32) + 0.05 * rng.standard_normal(lab.shape).astype(np.float32)
    s = StarDistTraining(depth=1, filters=8, n_rays=16, patch=32, patch_z=16, batch=1, steps=6, validate_every=3)
    result = run_to_end(train_stardist([img], [lab], [img], [lab], s, save_to=tmp_path / "m3"))
    model = load_ours(tmp_path / "m3", result.model.device)
    assert model.net.config.ndim == 3 and model.rays is not None
    assert segment(img, model, axes="ZYX", measure=False).labels.shape == lab.shape


def test_best_checkpoint_sees_outlines_not_only_detections():
    from napari_dlmicro.core.models.stardist.train import _rank

    early = {"f1": 0.87, "f1_07": 0.36, "val_loss": 0.73, "train_loss": 0.7}  # finds nuclei, outlines poor
    late = {"f1": 0.85, "f1_07": 0.80, "val_loss": 0.57, "train_loss": 0.4}
    assert _rank(late) > _rank(early)


def test_threshold_choice_ignores_one_object_of_noise():
    from napari_dlmicro.core.models.stardist.thresholds import choose

    scores = {(0.5, 0.4): 0.90, (0.6, 0.3): 0.92, (0.3, 0.3): 0.80}
    assert choose(scores, n_true=20) == (0.5, 0.4)  # 0.02 better is less than one object in 20
    assert choose(scores, n_true=200) == (0.6, 0.3)  # with 200 objects it is a real difference
