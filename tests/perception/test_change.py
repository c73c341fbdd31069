import numpy as np
import pytest

from drivers.sim.camera import Box
from perception.change import depth_change
from perception.common import PerceptionError

from .conftest import BACK_WALL

NOISE_K = 0.0025  # sigma(z) = 2.5 mm at 1 m


def _noisy(depth: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (depth + rng.normal(0.0, 1.0, depth.shape) * NOISE_K * depth**2).astype(np.float32)


def test_static_scene_with_noise_is_not_a_change(scene):
    depth, _ = scene([BACK_WALL, Box((0.0, 0.0, 0.7), (0.1, 0.1, 0.1))])
    r = depth_change(_noisy(depth, 1), _noisy(depth, 2), noise_k=NOISE_K)
    assert r.n_valid == np.count_nonzero(~np.isnan(depth))
    assert r.fraction < 1e-3
    assert depth_change(_noisy(depth, 1), _noisy(depth, 2), noise_k=NOISE_K, despeckle=True).fraction == 0.0


def test_moved_box_is_flagged(scene):
    before, lb = scene([BACK_WALL, Box((0.0, 0.0, 0.7), (0.1, 0.1, 0.1), label=1)])
    after, la = scene([BACK_WALL, Box((0.06, 0.0, 0.7), (0.1, 0.1, 0.1), label=1)])
    moved = (lb == 1) != (la == 1)
    r = depth_change(_noisy(before, 1), _noisy(after, 2), noise_k=NOISE_K)
    assert r.mask.shape == before.shape and r.mask.dtype == bool
    assert r.mask[moved].mean() > 0.99
    assert r.mask[~moved].mean() < 1e-3
    assert r.fraction == pytest.approx(moved.sum() / r.n_valid, rel=0.05)
    assert r.n_changed == np.count_nonzero(r.mask)


def test_small_real_change_vs_threshold(scene):
    depth, _ = scene([Box((0.0, 0.0, 1.0), (1.0, 1.0, 0.02))])
    assert depth_change(depth, depth + np.float32(0.02)).fraction == 1.0
    assert depth_change(depth, depth + np.float32(0.003)).fraction == 0.0  # below min_delta


def test_nan_pixels_are_ignored():
    a = np.full((4, 4), 1.0, dtype=np.float32)
    b = a.copy()
    b[0, 0] = np.nan
    a[1, 1] = np.nan
    b[2, 2] = 1.5
    r = depth_change(a, b)
    assert r.n_valid == 14 and r.n_changed == 1 and r.fraction == pytest.approx(1 / 14)
    assert not r.mask[0, 0] and not r.mask[1, 1] and r.mask[2, 2]


def test_empty_frames_give_zero():
    nan = np.full((480, 640), np.nan, dtype=np.float32)
    r = depth_change(nan, nan)
    assert (r.fraction, r.n_valid, r.n_changed) == (0.0, 0, 0)
    r = depth_change(np.zeros((0, 0), dtype=np.float32), np.zeros((0, 0), dtype=np.float32))
    assert r.fraction == 0.0


def test_despeckle_removes_isolated_pixels_keeps_blobs():
    a = np.ones((20, 20), dtype=np.float32)
    b = a.copy()
    b[3, 3] = 2.0  # one pixel
    b[10:15, 10:15] = 2.0  # a 5x5 blob
    plain = depth_change(a, b)
    clean = depth_change(a, b, despeckle=True)
    assert plain.mask[3, 3] and not clean.mask[3, 3]
    assert clean.mask[11:14, 11:14].all()
    assert clean.n_changed < plain.n_changed


@pytest.mark.parametrize(
    ("prev", "curr", "kwargs", "match"),
    [
        (np.ones((4, 4), np.float32), np.ones((4, 5), np.float32), {}, "shapes differ"),
        (np.ones((4, 4), np.float64), np.ones((4, 4), np.float32), {}, "previous must be float32"),
        (np.ones((4, 4), np.float32), np.full((4, 4), np.inf, np.float32), {}, "current contains infinite"),
        (np.ones((4, 4), np.float32), np.ones((4, 4), np.float32), {"noise_k": -1.0}, "noise_k"),
        (np.ones((4, 4), np.float32), np.ones((4, 4), np.float32), {"n_sigma": np.nan}, "n_sigma"),
        (np.ones(4, np.float32), np.ones(4, np.float32), {}, "2-D"),
    ],
)
def test_bad_inputs(prev, curr, kwargs, match):
    with pytest.raises(PerceptionError, match=match):
        depth_change(prev, curr, **kwargs)
