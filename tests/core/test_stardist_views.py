"""Test-time views of 2D StarDist: flips and turns map back onto the same grid pixels and rays."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from stardist.matching import matching

from napari_dlmicro.core.errors import UserError
from napari_dlmicro.core.jobs.segment import segment
from napari_dlmicro.core.models.cache import get_segmenter
from napari_dlmicro.core.models.stardist.views import averaged_forward, ray_permutations, view_list

GRID, DIV, RAYS = (2, 2), (8, 8), 32


def geometric_forward(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in network that is exactly a function of the geometry: the value at the grid pixel
    (prob) and the value 3 pixels away along each ray (dist), so every view must agree with the plain one."""
    img = v[..., 0]
    ys, xs = np.meshgrid(np.arange(0, img.shape[0], GRID[0]), np.arange(0, img.shape[1], GRID[1]), indexing="ij")
    phis = 2 * np.pi * np.arange(RAYS) / RAYS
    oy, ox = np.round(3 * np.sin(phis)).astype(int), np.round(3 * np.cos(phis)).astype(int)
    py = np.clip(ys[..., None] + oy, 0, img.shape[0] - 1)
    px = np.clip(xs[..., None] + ox, 0, img.shape[1] - 1)
    return img[ys, xs], img[py, px]


@pytest.mark.parametrize("n_views", [2, 3, 4, 8])
def test_every_view_lands_on_the_same_pixels_and_rays(n_views):
    x = np.random.default_rng(0).random((48, 64, 1)).astype(np.float32)
    prob, dist = geometric_forward(x)
    vprob, vdist = averaged_forward(geometric_forward, x, n_views, GRID, DIV, RAYS)
    inner = (slice(3, -3), slice(3, -3))  # away from the reflected border
    np.testing.assert_allclose(vprob, prob, atol=1e-6)
    np.testing.assert_allclose(vdist[inner], dist[inner], atol=1e-6)


def test_view_list_and_ray_maps():
    assert view_list(1) == [(False, False, False)]
    assert len(view_list(8)) == len(set(view_list(8))) == 8
    assert len(view_list(99)) == 8
    for perm in ray_permutations(RAYS).values():
        assert sorted(perm) == list(range(RAYS))
        assert np.array_equal(perm[perm], np.arange(RAYS))  # a flip undoes itself
    with pytest.raises(UserError, match="divisible by 4"):
        ray_permutations(30)


def test_eight_views_are_equivariant_under_a_transpose(trained_stardist):
    model = get_segmenter(trained_stardist, torch.device("cpu"))
    x = np.random.default_rng(1).random((64, 96, 1)).astype(np.float32)
    prob, dist = model.forward(x, 8)
    tprob, tdist = model.forward(np.ascontiguousarray(x.transpose(1, 0, 2)), 8)
    np.testing.assert_allclose(tprob.T, prob, atol=1e-5)
    np.testing.assert_allclose(tdist.transpose(1, 0, 2)[..., ray_permutations(32)["t"]], dist, atol=1e-4)


def test_views_setting_segments_and_agrees_with_the_plain_network(trained_stardist, right_half):
    img, gt = right_half
    model = get_segmenter(trained_stardist, torch.device("cpu"))
    assert model.default_settings()["views"] == 8  # trained here: views by default
    plain = segment(img, model, axes="YX", measure=False, settings={"views": 1})
    viewed = segment(img, model, axes="YX", measure=False)
    assert viewed.labels.shape == img.shape
    assert not np.array_equal(plain.labels, viewed.labels)
    # the test's network is trained briefly; the averaged one must find the nuclei at least as well
    assert matching(gt, viewed.labels, thresh=0.5).f1 >= matching(gt, plain.labels, thresh=0.5).f1 - 0.02


def test_cli_segments_with_views(trained_stardist, right_half, tmp_path, capsys):
    import tifffile

    from napari_dlmicro.cli import main

    tifffile.imwrite(tmp_path / "half.tif", right_half[0][:128])
    rc = main(["segment", str(tmp_path / "half.tif"), "-m", str(trained_stardist), "-o", str(tmp_path / "out"),
               "--views", "4", "--device", "cpu"])
    assert rc == 0 and tifffile.imread(tmp_path / "out" / "half_labels.tif").shape == (128, 256)
    with pytest.raises(SystemExit):
        main(["segment", str(tmp_path / "half.tif"), "-m", str(trained_stardist), "-o", str(tmp_path / "out"),
              "--views", "9"])
    assert "--views" in capsys.readouterr().err


def test_a_3d_model_says_views_do_not_apply_and_runs_once():
    from napari_dlmicro.core.models.stardist.segmenter import StarDistSegmenter
    from napari_dlmicro.core.models.stardist.settings import StarDistTraining
    from napari_dlmicro.core.models.stardist.train import build_network
    from napari_dlmicro.core.runtime.cancel import NEVER
    from napari_dlmicro.core.runtime.events import Notice, run_to_end

    net, rays = build_network(StarDistTraining(depth=1, filters=8, n_rays=8), 3, 1)
    model = StarDistSegmenter(net, name="tiny-3d", rays=rays)
    assert "views" not in model.default_settings()
    events = []
    volume = np.random.default_rng(2).random((8, 32, 32, 1)).astype(np.float32)
    run_to_end(model.candidates(volume, NEVER, None, 0.5, views=8), events.append)
    assert any(isinstance(e, Notice) and "2D models only" in e.message for e in events)
