import numpy as np
import pytest

from drivers.sim.camera import Box
from perception.cloud import depth_to_points
from perception.common import PerceptionError
from perception.occupancy import BinGeometry
from perception.sdf import SignedDistanceField, bin_sdf, occupancy_voxels, query_sdf

from .conftest import BACK_WALL, BIN, BIN_Z

# Front face 0.155 m into the bin: mid-voxel, so float32 depth rounding cannot move it to the next voxel.
ITEM = Box((0.05, 0.02, BIN_Z + 0.205), (0.1, 0.08, 0.1), label=1)
R = 0.01


@pytest.fixture(scope="module")
def points(scene, kp) -> np.ndarray:
    depth, _ = scene([BACK_WALL, ITEM])
    return depth_to_points(depth, kp)


@pytest.fixture(scope="module")
def field(points) -> SignedDistanceField:
    return bin_sdf(points, BIN, resolution=R)


def test_shape_and_sign_convention(field):
    assert field.shape == (40, 30, 35)
    assert field.values.dtype == np.float32
    assert (field.values[field.occupied] < 0).all()
    assert (field.values[~field.occupied] > 0).all()


def test_free_point_in_front_of_the_item(field):
    # 7 cm in front of the item's face; walls are >= 13 cm away.
    d = field.query(np.array([[0.05, 0.02, BIN_Z + 0.08]]))[0]
    assert d == pytest.approx(0.07, abs=R)


def test_inside_the_item_is_negative(field):
    d = field.query(np.array([[0.05, 0.02, BIN_Z + 0.2]]))[0]
    assert -0.06 < d < 0


def test_walls_count_as_obstacles(points, field):
    near_wall = np.array([[-0.18, 0.0, BIN_Z + 0.1]])  # 2 cm from the left wall
    assert field.query(near_wall)[0] == pytest.approx(0.02, abs=0.002)
    no_walls = bin_sdf(points, BIN, resolution=R, walls=False)
    assert no_walls.query(near_wall)[0] > 0.1


def test_magnitude_against_a_full_plane():
    geom = BinGeometry((0.0, 0.0, 1.0), 0.2, 0.2, 0.4)
    g = np.arange(0.0025, 0.2, 0.005)
    xx, yy = np.meshgrid(g, -g)
    plane = np.stack([xx.ravel(), yy.ravel(), np.full(xx.size, 1.205)], axis=1)  # bin z 0.205
    f = bin_sdf(plane, geom, resolution=R, shadow="column", walls=False)
    z = np.array([0.025, 0.105, 0.185, 0.215, 0.305])
    q = np.stack([np.full(5, 0.1), np.full(5, -0.1), 1.0 + z], axis=1)
    assert np.allclose(f.query(q), 0.2 - z, atol=1e-6)  # the surface is the voxel face at z = 0.2


def test_shadow_modes(points):
    none = occupancy_voxels(points, BIN, resolution=R, shadow="none")
    column = occupancy_voxels(points, BIN, resolution=R, shadow="column")
    ray = occupancy_voxels(points, BIN, resolution=R, shadow="ray")
    assert none.sum() < column.sum() < ray.sum()
    assert (none <= column).all() and (none <= ray).all()
    # The item's perspective shadow spreads away from the optical axis (towards +x here):
    # at the back, bin x = 0.315 (camera x 0.115) lies in the ray shadow but not the column.
    ix, iy, iz = 31, 15, 34
    assert ray[ix, iy, iz] and not column[ix, iy, iz]
    assert not ray[34, iy, iz]  # the shadow's edge is at camera x 0.1 * 0.845 / 0.655 = 0.129
    assert column[25, 15, 20] and ray[25, 15, 20]  # straight behind the face


def test_empty_scene():
    empty = np.zeros((0, 3))
    f = bin_sdf(empty, BIN, resolution=0.02)
    assert not f.occupied.any()
    centre = np.array([[0.0, 0.0, BIN_Z + 0.1]])
    assert f.query(centre)[0] == pytest.approx(0.15, abs=0.011)  # to the top/bottom walls
    assert np.isposinf(bin_sdf(empty, BIN, resolution=0.02, walls=False).values).all()
    assert query_sdf(f, empty).shape == (0,)


def test_query_outside_the_grid(field):
    pts = np.array([[0.0, 0.0, BIN_Z - 0.1], [1.0, 0.0, BIN_Z + 0.1]])
    assert np.isnan(field.query(pts)).all()
    assert (field.query(pts, outside=-1.0) == -1.0).all()


def test_item_sticking_out_shadows_the_opening():
    geom = BinGeometry((-0.1, 0.1, 1.0), 0.2, 0.2, 0.3)
    occ = occupancy_voxels(np.array([[0.0, 0.0, 0.9]]), geom, resolution=R)
    assert occ[10, 10, 0] and occ[10, 10, -1] and occ.sum() == occ.shape[2]


def test_bad_inputs(points):
    with pytest.raises(PerceptionError, match="shadow"):
        bin_sdf(points, BIN, shadow="cone")
    with pytest.raises(PerceptionError, match="in front of the camera"):
        bin_sdf(points, BinGeometry((0.0, 0.0, -1.0), 0.1, 0.1, 0.1))
    with pytest.raises(PerceptionError, match="resolution"):
        bin_sdf(points, BIN, resolution=-0.01)
    with pytest.raises(PerceptionError, match="too fine"):
        bin_sdf(points, BIN, resolution=1e-4)
    with pytest.raises(PerceptionError, match="NaN"):
        bin_sdf(np.array([[np.nan, 0.0, 1.0]]), BIN)
    with pytest.raises(PerceptionError, match="SignedDistanceField"):
        query_sdf("field", points)


def test_far_away_points_are_ignored():
    geom = BinGeometry((0.0, 0.0, 1.0), 0.1, 0.1, 0.1)
    f = bin_sdf(np.array([[1e300, 1e300, 1e300], [-1e300, 0.0, 2.0]]), geom, resolution=R)
    assert not f.occupied.any()


def _reference_voxels(points: np.ndarray, geom: BinGeometry, r: float) -> np.ndarray:
    """The straightforward (N, 3) indexing the fast path replaced (no shadows, no points in front)."""
    shape = tuple(max(1, int(np.ceil(s / r - 1e-9))) for s in (geom.width, geom.height, geom.depth))
    occ = np.zeros(shape, dtype=bool)
    fi = np.floor(geom.to_bin(points) / r)
    ok = np.all((fi >= 0) & (fi < np.array(shape)), axis=1)
    idx = fi[ok].astype(np.int64)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return occ


@pytest.mark.parametrize("seed", [0, 3])
def test_fast_voxel_indexing_matches_reference_and_leaves_points_alone(seed):
    from drivers.sim.world import generate_bin
    from drivers.sim.world_render import CameraPose, render_bin

    b = generate_bin(seed, density=0.9)
    v = render_bin(b)
    pts = depth_to_points(v.depth_m, v.intrinsics)
    origin = CameraPose().to_camera(b, np.zeros((1, 3)))[0]
    geom = BinGeometry(tuple(float(x) for x in origin), b.width_mm / 1e3, b.height_mm / 1e3, b.depth_mm / 1e3)
    inside = geom.to_bin(pts)[:, 2] >= 0
    before = pts.copy()
    got = occupancy_voxels(pts[inside], geom, resolution=0.01, shadow="none")
    assert np.array_equal(got, _reference_voxels(pts[inside], geom, 0.01))
    one = pts[:1].copy()
    occupancy_voxels(one, geom, resolution=0.01)  # a (1, 3) array's transpose is contiguous: must not be written
    assert np.array_equal(pts, before) and np.array_equal(one, before[:1])
