"""CARE's patches: drawn where the target has signal when asked, and aligned with larger targets."""
from __future__ import annotations

import numpy as np

from napari_dlmicro._sample_noisy import noisy_nuclei_arrays
from napari_dlmicro.core.data.samples import PatchSampler, grid_patches, signal_map, split_validation


def test_focus_draws_more_patches_where_the_target_has_signal():
    noisy, clean = noisy_nuclei_arrays()
    x, y = noisy[None, :256], clean[None, :256]
    signal = signal_map(y)
    assert 0.1 < signal.mean() < 0.3  # the nuclei, not the background
    threshold = y[0][signal].min()

    def signal_share(focus: float) -> float:
        sampler = PatchSampler([x], [y], (64, 64), True, 0, focus=focus)
        return float(np.mean([(sampler.batch(16)[1] >= threshold).mean() for _ in range(10)]))

    anywhere, focused = signal_share(0.0), signal_share(1.0)
    assert focused > anywhere + 0.04, (anywhere, focused)


def test_patches_of_larger_targets_cover_the_same_region():
    rng = np.random.default_rng(0)
    low = rng.random((1, 40, 48)).astype(np.float32)
    high = np.kron(low, np.ones((1, 2, 2), np.float32))  # each input pixel a 2x2 block of its target
    for focus in (0.0, 1.0):
        sampler = PatchSampler([low], [high], (16, 16), True, 1, (2, 2), focus=focus)
        xb, yb = sampler.batch(8)
        assert xb.shape == (8, 1, 16, 16) and yb.shape == (8, 1, 32, 32)
        np.testing.assert_array_equal(np.kron(xb, np.ones((1, 1, 2, 2), np.float32)), yb)
    tr_x, tr_y, va_x, va_y = split_validation([low], [high], 0.4, (16, 16), (2, 2))
    assert tr_y[0].shape[1] == 2 * tr_x[0].shape[1] and va_y[0].shape[1] == 2 * va_x[0].shape[1]
    np.testing.assert_array_equal(np.kron(va_x[0], np.ones((1, 2, 2), np.float32)), va_y[0])
    gx, gy = grid_patches(va_x, (16, 16)), grid_patches(va_y, (16, 16), scale=(2, 2))
    assert len(gx) == len(gy)
    np.testing.assert_array_equal(np.kron(gx, np.ones((1, 1, 2, 2), np.float32)), gy)
