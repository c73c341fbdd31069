import math

import numpy as np
import pytest

from planning.placement import PlacementReason, PlanningError, find_placements, footprint_cells

CELL = 10.0


def _cells(p, cell=CELL):
    c0, r0 = round(p.x_mm / cell), round(p.y_mm / cell)
    kw, kh = footprint_cells(p.width_mm, p.height_mm, cell)
    return r0, c0, kh, kw


def test_empty_bin_floor_left():
    occ = np.zeros((90, 60), dtype=bool)
    res = find_placements(occ, CELL, 100.0, 200.0)
    assert res.ok and res.reason is PlacementReason.OK
    best = res.best
    assert (best.x_mm, best.y_mm, best.width_mm, best.height_mm, best.rotated) == (0.0, 0.0, 100.0, 200.0, False)
    assert best.score == 0.0
    assert [p.y_mm for p in res.placements] == sorted(p.y_mm for p in res.placements)
    assert res.free_area_mm2 == 90 * 60 * CELL * CELL


def test_exact_gap_is_found():
    occ = np.ones((20, 30), dtype=bool)
    occ[0:5, 12:16] = False  # a 4x5-cell hole on the floor
    res = find_placements(occ, CELL, 40.0, 50.0, max_results=None)
    assert res.ok
    assert len(res.placements) == 1
    p = res.best
    assert (p.x_mm, p.y_mm) == (120.0, 0.0)
    assert p.score == 0.0  # walls of items on both sides


def test_gap_on_shelf_of_items_is_supported():
    occ = np.zeros((20, 30), dtype=bool)
    occ[:10, :] = True
    res = find_placements(occ, CELL, 40.0, 50.0)
    assert res.best.y_mm == 100.0 and res.best.x_mm == 0.0


def test_fragmented_reason():
    occ = np.zeros((10, 12), dtype=bool)
    occ[:, ::3] = True  # free columns come in pairs; 8 free columns per band
    res = find_placements(occ, CELL, 30.0, 30.0)
    assert not res.ok and res.placements == ()
    assert res.reason is PlacementReason.FRAGMENTED
    assert "sweep" in res.detail


def test_too_small_and_insufficient_area():
    occ = np.zeros((5, 5), dtype=bool)
    assert find_placements(occ, CELL, 60.0, 10.0).reason is PlacementReason.TOO_SMALL
    full = np.ones((5, 5), dtype=bool)
    assert find_placements(full, CELL, 10.0, 10.0).reason is PlacementReason.INSUFFICIENT_FREE_AREA


def test_no_contiguous_space_is_not_fragmented():
    # plenty of free area above, but not enough headroom for a tall item: a sideways sweep cannot help
    occ = np.zeros((10, 10), dtype=bool)
    occ[:7, :] = True
    res = find_placements(occ, CELL, 20.0, 50.0)
    assert res.reason is PlacementReason.NO_CONTIGUOUS_SPACE


def test_support_rule():
    occ = np.zeros((10, 10), dtype=bool)
    occ[0:4, 0:2] = True  # a narrow tower on the left: 2 columns high 4
    occ[0:2, 2:10] = True  # a low layer elsewhere
    # fully free above the tower row 4 cols 0..3 is unsupported for width 4 at fraction 0.75 (only 2/4 below)
    res = find_placements(occ, CELL, 40.0, 20.0, min_support_fraction=0.75, max_results=None)
    assert res.ok
    for p in res.placements:
        r0, c0, _, kw = _cells(p)
        below = occ[r0 - 1, c0 : c0 + kw] if r0 > 0 else np.ones(kw, bool)
        assert below.mean() >= 0.75
    assert res.best.y_mm == 20.0
    # no floating placements: a free region rows 2..9 on a 2-row block rests only on row 2
    occ2 = np.zeros((10, 4), dtype=bool)
    occ2[0:2, :] = True
    res2 = find_placements(occ2, CELL, 40.0, 30.0, max_results=None)
    assert {p.y_mm for p in res2.placements} == {20.0}


def test_unsupported_reason():
    occ = np.zeros((10, 10), dtype=bool)
    occ[0:6, :] = True
    occ[0:6, 4:6] = False  # a 2-wide well; the item of width 6 cannot enter and above the well is half-supported
    res = find_placements(occ, CELL, 100.0, 30.0, min_support_fraction=1.0)
    assert res.reason is PlacementReason.UNSUPPORTED


def test_rotation_finds_spot_unrotated_cannot():
    occ = np.ones((10, 10), dtype=bool)
    occ[0:2, 0:6] = False  # a wide, low slot
    assert find_placements(occ, CELL, 20.0, 60.0).reason is not PlacementReason.OK
    res = find_placements(occ, CELL, 20.0, 60.0, allow_rotation=True)
    assert res.ok and res.best.rotated
    assert (res.best.width_mm, res.best.height_mm, res.best.x_mm, res.best.y_mm) == (60.0, 20.0, 0.0, 0.0)


def test_rotation_prefers_unrotated_on_tie():
    occ = np.zeros((10, 10), dtype=bool)
    res = find_placements(occ, CELL, 20.0, 30.0, allow_rotation=True)
    assert not res.best.rotated
    assert any(p.rotated for p in res.placements)


def test_free_depth_constraint():
    occ = np.zeros((10, 10), dtype=bool)
    depth = np.full((10, 10), 300.0)
    depth[:, :5] = 100.0  # left half shallow
    res = find_placements(occ, CELL, 30.0, 30.0, free_depth_mm=depth, depth_mm=200.0, max_results=None)
    assert res.ok
    for p in res.placements:
        r0, c0, kh, kw = _cells(p)
        assert depth[r0 : r0 + kh, c0 : c0 + kw].min() >= 200.0
    assert res.best.x_mm == 50.0
    shallow = np.full((10, 10), 100.0)
    r = find_placements(occ, CELL, 30.0, 30.0, free_depth_mm=shallow, depth_mm=200.0)
    assert r.reason is PlacementReason.INSUFFICIENT_DEPTH


def test_score_prefers_contact_with_neighbours():
    occ = np.zeros((10, 20), dtype=bool)
    occ[0:3, 8:10] = True  # a box in the middle of the floor
    res = find_placements(occ, CELL, 30.0, 30.0, max_results=None)
    floor_scores = {p.x_mm: p.score for p in res.placements if p.y_mm == 0.0}
    assert floor_scores[0.0] == 0.0 and floor_scores[50.0] == 0.0 and floor_scores[100.0] == 0.0
    assert floor_scores[20.0] > 0.0  # gap to both wall and box


@pytest.mark.parametrize("seed", range(60))
def test_property_never_overlaps_and_supported(seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(5, 40), rng.integers(5, 40)
    # gravity-ish random stacks: column heights plus random holes
    occ = rng.random((rows, cols)) < rng.uniform(0.0, 0.6)
    cell = float(rng.choice([5.0, 10.0, 12.5]))
    w = float(rng.uniform(1, cols * cell * 0.5))
    h = float(rng.uniform(1, rows * cell * 0.5))
    frac = float(rng.uniform(0.1, 1.0))
    depth = rng.uniform(0, 400, size=(rows, cols))
    d = float(rng.uniform(1, 300))
    res = find_placements(
        occ,
        cell,
        w,
        h,
        allow_rotation=bool(seed % 2),
        min_support_fraction=frac,
        free_depth_mm=depth,
        depth_mm=d,
        max_results=None,
    )
    assert res.ok == bool(res.placements)
    seen = set()
    for p in res.placements:
        r0, c0, kh, kw = _cells(p, cell)
        assert (kw, kh) == (math.ceil(p.width_mm / cell - 1e-9), math.ceil(p.height_mm / cell - 1e-9))
        assert r0 >= 0 and c0 >= 0 and r0 + kh <= rows and c0 + kw <= cols
        assert not occ[r0 : r0 + kh, c0 : c0 + kw].any()
        assert depth[r0 : r0 + kh, c0 : c0 + kw].min() >= d - 1e-9
        if r0 > 0:
            assert occ[r0 - 1, c0 : c0 + kw].sum() >= frac * kw - 1e-9
        key = (r0, c0, p.rotated)
        assert key not in seen
        seen.add(key)
    # brute force: the number of feasible (unrotated) spots matches
    kw, kh = footprint_cells(w, h, cell)
    expect = 0
    for r in range(rows - kh + 1):
        for c in range(cols - kw + 1):
            if occ[r : r + kh, c : c + kw].any() or depth[r : r + kh, c : c + kw].min() < d:
                continue
            if r == 0 or occ[r - 1, c : c + kw].sum() >= frac * kw - 1e-9:
                expect += 1
    assert sum(1 for p in res.placements if not p.rotated) == expect
    scores = [p.score for p in res.placements]
    assert scores == sorted(scores)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"occupancy": np.zeros((3, 3), dtype=np.uint8)}, "dtype bool"),
        ({"occupancy": np.zeros((3,), dtype=bool)}, "2-D"),
        ({"occupancy": np.zeros((0, 3), dtype=bool)}, "empty"),
        ({"occupancy": [[False]]}, "numpy array"),
        ({"cell_mm": 0.0}, "cell_mm"),
        ({"cell_mm": float("nan")}, "cell_mm"),
        ({"width_mm": -1.0}, "width_mm"),
        ({"height_mm": float("inf")}, "height_mm"),
        ({"min_support_fraction": 1.5}, "min_support_fraction"),
        ({"max_results": 0}, "max_results"),
        ({"depth_mm": 10.0}, "together"),
        ({"free_depth_mm": np.zeros((2, 2)), "depth_mm": 1.0}, "shape"),
        ({"free_depth_mm": np.full((3, 3), np.nan), "depth_mm": 1.0}, "NaN"),
        ({"free_depth_mm": np.full((3, 3), -1.0), "depth_mm": 1.0}, "negative"),
        ({"free_depth_mm": np.zeros((3, 3)), "depth_mm": 0.0}, "depth_mm"),
    ],
)
def test_validation(kwargs, match):
    args = {"occupancy": np.zeros((3, 3), dtype=bool), "cell_mm": 10.0, "width_mm": 10.0, "height_mm": 10.0}
    args.update(kwargs)
    with pytest.raises(PlanningError, match=match):
        find_placements(**args)
