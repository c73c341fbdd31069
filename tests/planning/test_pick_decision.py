"""planning.pick_decision's depth smoothing: a noisy flat face becomes flat enough for the cup, edges stay."""

from __future__ import annotations

import numpy as np

from planning.pick_decision import median_within


def test_median_within_smooths_the_mask_and_leaves_the_rest() -> None:
    rng = np.random.default_rng(0)
    depth = np.full((60, 80), 0.7, np.float32)  # the back wall
    mask = np.zeros(depth.shape, bool)
    mask[10:40, 10:50] = True
    depth[mask] = 0.6 + rng.normal(0.0, 0.008, int(mask.sum()))  # a face at 0.6 m, 8 mm noise
    depth[15, 15] = np.nan  # a missing return inside
    out = median_within(depth, mask)
    assert np.nanstd(out[mask]) < 0.5 * np.nanstd(depth[mask])
    assert np.array_equal(out[~mask], depth[~mask])  # off the mask: untouched
    assert np.isfinite(out[15, 15])  # filled from its neighbours on the face
    assert np.all(np.abs(out[mask] - 0.6) < 0.02)  # no wall depth leaks in across the edge
    assert np.array_equal(median_within(depth, np.zeros_like(mask)), depth, equal_nan=True)
