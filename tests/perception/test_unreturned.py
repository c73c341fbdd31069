"""perception.unreturned: the depth that item pixels without a return may have."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.camera import Intrinsics
from perception.common import PerceptionError
from perception.unreturned import MIN_RETURNS, fill_from_below, fill_from_instances, hole_rays


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    depth = np.full((24, 32), 0.8, dtype=np.float32)
    instance = np.zeros((24, 32), dtype=np.int32)
    instance[2:12, 2:12] = 1  # 100 pixels, a face at 0.50-0.55 m with a hole
    depth[2:12, 2:12] = np.linspace(0.50, 0.55, 100, dtype=np.float32).reshape(10, 10)
    depth[4:8, 4:8] = np.nan
    instance[14:20, 14:20] = 2  # a dark item: a few returns only
    depth[14:20, 14:20] = np.nan
    depth[14, 14:16] = 0.6
    return depth, instance > 0, instance


def test_a_hole_in_a_well_returned_instance_takes_its_near_depth() -> None:
    depth, item, instance = _scene()
    filled, holes = fill_from_instances(depth, item, instance)
    got = depth[2:12, 2:12][np.isfinite(depth[2:12, 2:12])]
    assert np.allclose(filled[4:8, 4:8], np.percentile(got, 10))
    assert filled[4:8, 4:8].max() < np.median(got)  # the near side
    assert not holes[2:12, 2:12].any()
    assert np.isnan(depth[4:8, 4:8]).all()  # the input is left alone


def test_an_instance_with_too_few_returns_keeps_its_holes() -> None:
    depth, item, instance = _scene()
    filled, holes = fill_from_instances(depth, item, instance)
    assert (instance == 2).sum() - 2 == holes.sum() and holes[15:20, 14:20].all()
    assert np.isnan(filled[holes]).all()
    assert MIN_RETURNS > 2


def test_holes_outside_items_are_not_items() -> None:
    depth, item, instance = _scene()
    depth[22, 30] = np.nan  # background without a return
    _, holes = fill_from_instances(depth, item, instance)
    assert not holes[22, 30]


def test_a_dark_region_takes_the_near_depth_of_what_shows_under_it() -> None:
    depth = np.full((24, 32), 0.8, dtype=np.float32)
    depth[18:24] = np.linspace(0.55, 0.60, 32, dtype=np.float32)  # the floor up to the item's front, 0.55-0.60 m
    holes = np.zeros((24, 32), dtype=bool)
    holes[6:18, 4:20] = True  # a dark item standing on it
    holes[0:2, 28:32] = True  # a hole with nothing returned under it: left a hole
    depth[holes] = np.nan
    depth[2:5, 28:32] = np.nan
    filled, left = fill_from_below(depth, holes)
    under = depth[18:21, 4:20]
    assert np.allclose(filled[6:18, 4:20], np.percentile(under, 10))
    assert left[0:2, 28:32].all() and not left[6:18, 4:20].any()


def test_fill_refuses_mismatched_shapes() -> None:
    depth, item, instance = _scene()
    with pytest.raises(PerceptionError, match="differ"):
        fill_from_instances(depth, item[:10], instance)


def test_hole_rays_run_from_the_filled_depth_outwards_to_the_reach(k: Intrinsics) -> None:
    depth = np.full((480, 640), np.nan, dtype=np.float32)
    filled = np.zeros((480, 640), dtype=bool)
    depth[240, 600], filled[240, 600] = 0.2, True  # a pixel near the right edge, filled at 0.2 m
    depth[100, 100] = 0.5  # a returned pixel: no ray
    pts = hole_rays(depth, filled, k, reach_m=0.3, step_m=0.01)
    assert len(pts) == 30
    assert pts[:, 2].min() == pytest.approx(0.21, abs=1e-6) and pts[:, 2].max() == pytest.approx(0.5, abs=1e-6)
    slope = pts[:, 0] / pts[:, 2]  # one ray: x / z is the pixel's, and x grows outwards with the depth
    assert np.allclose(slope, slope[0]) and slope[0] > 0 and np.all(np.diff(pts[:, 0]) > 0)
    assert len(hole_rays(depth, np.zeros_like(filled), k, reach_m=0.3, step_m=0.01)) == 0
    with pytest.raises(PerceptionError, match="step_m"):
        hole_rays(depth, filled, k, reach_m=0.3, step_m=0.0)
