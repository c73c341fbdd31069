import numpy as np
import pytest

from drivers.sim.camera import Box
from perception.cloud import depth_to_points
from perception.common import PerceptionError
from perception.occupancy import (
    BinGeometry,
    FrontFaceMap,
    fill_unobserved,
    free_space_boxes,
    front_face_map,
    largest_rectangle,
)

from .conftest import BACK_WALL, BIN, BIN_D, BIN_H, BIN_W, BIN_Z

# Box inside the bin: camera x 0..0.1, y -0.02..0.06, front face 0.15 m behind the opening.
ITEM = Box((0.05, 0.02, BIN_Z + 0.2), (0.1, 0.08, 0.1), label=1)
# ... which in the bin frame (y up, from the opening's bottom-left corner) covers:
ITEM_X = (0.2, 0.3)
ITEM_Y = (0.09, 0.17)
ITEM_FREE = 0.15


@pytest.fixture(scope="module")
def fmap(scene, kp) -> FrontFaceMap:
    depth, _ = scene([BACK_WALL, ITEM])
    return front_face_map(depth_to_points(depth, kp), BIN, resolution=0.005)


def _cells(fmap, xr, yr, margin=0.01):
    xs, ys = fmap.cell_centres()
    cx = (xs > xr[0] + margin) & (xs < xr[1] - margin)
    cy = (ys > yr[0] + margin) & (ys < yr[1] - margin)
    return cy[:, None] & cx[None, :]


def test_grid_covers_the_opening(fmap):
    assert fmap.free_depth.shape == (60, 80)
    assert fmap.free_depth.dtype == np.float32
    assert fmap.observed.mean() > 0.95


def test_free_depth_matches_the_box_in_the_bin(fmap):
    on_item = _cells(fmap, ITEM_X, ITEM_Y)
    assert on_item.sum() > 100
    assert np.allclose(fmap.free_depth[on_item], ITEM_FREE, atol=1e-5)
    # Well away from the item (and its perspective shadow) the bin is free to the back.
    left = _cells(fmap, (0.0, 0.15), (0.0, BIN_H))
    assert np.allclose(fmap.free_depth[left], BIN_D, atol=1e-5)


def test_occupancy_image_at_a_required_depth(fmap):
    on_item = _cells(fmap, ITEM_X, ITEM_Y)
    occ = fmap.occupied(0.2)
    assert occ[on_item].all()
    assert not fmap.occupied(0.1)[on_item].any()
    # Occupied cells at 0.2 m: the item's footprint, plus its unseen shadow (conservative).
    xs, ys = fmap.cell_centres()
    ox, oy = np.nonzero(occ)
    assert xs[oy].min() > ITEM_X[0] - 0.005 and xs[oy].max() < ITEM_X[1] + 0.04
    assert ys[ox].min() > ITEM_Y[0] - 0.02 and ys[ox].max() < ITEM_Y[1] + 0.005
    assert np.array_equal(fmap.free(0.2), ~occ)


def test_free_space_boxes_avoid_the_item(fmap):
    boxes = free_space_boxes(fmap, 0.2, max_boxes=4)
    assert 1 <= len(boxes) <= 4
    areas = [b.area for b in boxes]
    assert areas == sorted(areas, reverse=True)
    # The largest free rectangle: everything left of the item, full height.
    best = boxes[0]
    assert best.x_min == 0.0 and best.x_max == pytest.approx(ITEM_X[0])
    assert best.y_min == 0.0 and best.y_max == pytest.approx(BIN_H)
    occ = fmap.occupied(0.2)
    for b in boxes:
        r0, r1, c0, c1 = b.cells
        assert not occ[r0:r1, c0:c1].any()
        assert b.free_depth >= 0.2
        # Maximal: no side can grow.
        assert r0 == 0 or occ[r0 - 1, c0:c1].any()
        assert c1 == occ.shape[1] or occ[r0:r1, c1].any()
    # Nothing is free beyond the back of the bin.
    assert free_space_boxes(fmap, BIN_D + 0.01) == []


def test_min_size_filters_free_boxes(fmap):
    for b in free_space_boxes(fmap, 0.2, min_width=0.25, min_height=0.1):
        assert b.width >= 0.25 - 1e-9 and b.height >= 0.1 - 1e-9
    assert free_space_boxes(fmap, 0.2, min_width=0.5) == []


def test_synthetic_points_and_item_sticking_out():
    geom = BinGeometry((0.0, 0.0, 1.0), 0.1, 0.1, 0.5)
    pts = np.array(
        [
            [0.012, -0.012, 1.3],  # bin (0.012, 0.012, 0.3) -> cell (2, 2)
            [0.013, -0.013, 1.2],  # nearer point in the same cell wins
            [0.052, -0.002, 0.9],  # in front of the opening -> 0
            [0.092, -0.092, 2.0],  # behind the back -> full depth
            [0.5, 0.0, 1.2],  # outside the opening: ignored
        ]
    )
    fmap = front_face_map(pts, geom, resolution=0.01)
    assert fmap.free_depth[1, 1] == pytest.approx(0.2)
    assert fmap.free_depth[0, 5] == 0.0
    assert fmap.free_depth[9, 9] == pytest.approx(0.5)
    assert fmap.counts.sum() == 4
    assert fmap.observed.sum() == 3
    assert fmap.free_depth[5, 5] == 0.0  # unobserved -> conservative
    optimistic = front_face_map(pts, geom, resolution=0.01, unobserved_free=True)
    assert optimistic.free_depth[5, 5] == pytest.approx(0.5)


def test_empty_scene_is_all_unobserved():
    fmap = front_face_map(np.zeros((0, 3)), BIN, resolution=0.01)
    assert not fmap.observed.any() and (fmap.free_depth == 0).all()
    assert free_space_boxes(fmap, 0.05) == []
    free = front_face_map(np.zeros((0, 3)), BIN, resolution=0.01, unobserved_free=True)
    assert free_space_boxes(free, 0.05)[0].area == pytest.approx(BIN_W * BIN_H)


def test_bin_frame_round_trip():
    pts = np.array([[0.1, 0.2, 0.7], [-0.2, 0.15, 0.5]])
    b = BIN.to_bin(pts)
    assert np.allclose(b[1], [0.0, 0.0, 0.0])  # the opening's bottom-left corner
    assert np.allclose(b[0], [0.3, -0.05, 0.2])
    assert np.allclose(BIN.to_camera(b), pts)


def test_largest_rectangle():
    m = np.zeros((5, 6), dtype=bool)
    m[1:4, 1:5] = True
    m[0, :] = True
    assert largest_rectangle(m) == (0, 4, 1, 5)
    assert largest_rectangle(m, min_cols=6) == (0, 1, 0, 6)
    assert largest_rectangle(m, min_rows=5) is None
    assert largest_rectangle(np.zeros((3, 3), dtype=bool)) is None
    assert largest_rectangle(np.zeros((0, 3), dtype=bool)) is None


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (((0.0, 0.0, 0.5), -0.1, 0.1, 0.1), "width"),
        (((0.0, np.nan, 0.5), 0.1, 0.1, 0.1), "origin"),
        (((0.0, 0.0), 0.1, 0.1, 0.1), "origin"),
        (((0.0, 0.0, 0.5), 0.1, 0.1, np.inf), "depth"),
    ],
)
def test_bad_bin_geometry(args, match):
    with pytest.raises(PerceptionError, match=match):
        BinGeometry(*args)


def test_bad_occupancy_inputs(fmap):
    with pytest.raises(PerceptionError, match="resolution"):
        front_face_map(np.zeros((0, 3)), BIN, resolution=0.0)
    with pytest.raises(PerceptionError, match="too fine"):
        front_face_map(np.zeros((0, 3)), BIN, resolution=1e-6)
    with pytest.raises(PerceptionError, match=r"\(N, 3\)"):
        front_face_map(np.zeros((5, 2)), BIN)
    with pytest.raises(PerceptionError, match="NaN"):
        front_face_map(np.array([[0.0, 0.0, np.nan]]), BIN)
    with pytest.raises(PerceptionError, match="BinGeometry"):
        front_face_map(np.zeros((0, 3)), (0, 0, 0, 1, 1, 1))
    with pytest.raises(PerceptionError, match="required_depth"):
        fmap.occupied(np.nan)
    with pytest.raises(PerceptionError, match="max_boxes"):
        free_space_boxes(fmap, 0.1, max_boxes=0)
    with pytest.raises(PerceptionError, match="2-D bool"):
        largest_rectangle(np.zeros((3, 3)))


def test_the_bins_own_floor_and_walls_are_not_obstacles() -> None:
    """An empty rendered bin: the floor row and side columns are free as deep as they are seen."""
    from drivers.sim.world import Bin
    from drivers.sim.world_render import CameraPose, render_bin

    empty = Bin("b", 450.0, 300.0, 350.0)
    pose = CameraPose()
    view = render_bin(empty, pose=pose)
    origin = pose.to_camera(empty, np.zeros((1, 3)))[0]
    geometry = BinGeometry(tuple(float(v) for v in origin), 0.45, 0.3, 0.35)
    fmap = front_face_map(depth_to_points(view.depth_m, view.intrinsics, mask=view.cls != 2), geometry)
    seen = fmap.observed
    assert seen[0].mean() > 0.9 and seen[:, 0].mean() > 0.5
    assert np.all(fmap.free_depth[0][seen[0]] > 0.1)  # floor row: free, not blocked at depth 0
    assert np.all(fmap.free_depth[:, 0][seen[:, 0]] > 0.1)  # left wall column likewise


def _map(free: np.ndarray, observed: np.ndarray) -> FrontFaceMap:
    g = BinGeometry((0.0, 0.0, 0.3), 0.1, 0.1, 0.3)
    return FrontFaceMap(g, 0.02, free.astype(np.float32), observed, np.ones(free.shape, np.int32))


def test_fill_unobserved_gives_an_occluded_strip_the_least_free_depth_beside_it():
    free = np.full((5, 5), 0.3)
    free[1, 1] = 0.1  # an item's face just below the strip, in one column
    seen = np.ones((5, 5), bool)
    seen[2, :] = False  # the band's strip: nothing observed
    out = fill_unobserved(_map(free, seen)).free_depth
    assert out[2, 1] == pytest.approx(0.1)  # the nearer (more occupied) of below (0.1) and above (0.3)
    assert np.allclose(np.delete(out[2], 1), 0.3)
    assert np.array_equal(out[seen], free[seen].astype(np.float32))  # observed cells are kept


def test_fill_unobserved_leaves_cells_far_from_any_observation_occupied():
    free = np.full((9, 9), 0.3)
    seen = np.zeros((9, 9), bool)
    seen[0, 0] = True
    out = fill_unobserved(_map(free, seen), max_gap=3).free_depth
    assert out[0, 3] == pytest.approx(0.3) and out[3, 0] == pytest.approx(0.3)  # within 3 cells of (0, 0)
    assert out[0, 4] == 0.0 and out[8, 8] == 0.0  # beyond: conservative, occupied
    with pytest.raises(PerceptionError, match="max_gap"):
        fill_unobserved(_map(free, seen), max_gap=-1)


def test_fill_unobserved_fills_a_strip_from_above_and_below_not_from_its_side():
    free = np.full((7, 7), 0.3)
    free[:, 0] = 0.02  # an item at the front, left of the strip's visible end
    seen = np.ones((7, 7), bool)
    seen[2:5, 1:] = False  # the band's strip, the bin's contents above and below it seen
    out = fill_unobserved(_map(free, seen)).free_depth
    assert np.allclose(out[2:5, 1:], 0.3)  # the item beside the strip does not grow into it
