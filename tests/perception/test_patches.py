import numpy as np
import pytest

from drivers.sim.camera import Box
from perception.cloud import segments_from_labels
from perception.common import PerceptionError
from perception.patches import find_patches


def _segment(scene, kp, box):
    depth, labels = scene([box])
    return segments_from_labels(depth, labels, kp)[box.label].points


def test_front_face_is_one_patch(scene, kp):
    box = Box((0.0, 0.0, 0.6), (0.12, 0.08, 0.1), label=1)  # on axis: only the front face is seen
    patches = find_patches(_segment(scene, kp, box))
    assert len(patches) == 1
    p = patches[0]
    assert np.allclose(p.normal, [0.0, 0.0, -1.0], atol=1e-3)
    assert p.area == pytest.approx(0.12 * 0.08, rel=0.08)
    assert np.allclose(p.centre, [0.0, 0.0, 0.55], atol=0.003)
    assert p.residual < 1e-4


def test_off_axis_box_shows_front_and_side(scene, kp):
    box = Box((0.25, 0.0, 0.6), (0.1, 0.1, 0.06), label=1)  # the camera also sees its left face
    patches = find_patches(_segment(scene, kp, box), min_area=0.002)
    normals = np.array([p.normal for p in patches])
    assert len(patches) == 2
    assert np.allclose(normals[0], [0.0, 0.0, -1.0], atol=0.02)  # largest first: the front face
    assert np.allclose(normals[1], [-1.0, 0.0, 0.0], atol=0.02)
    assert patches[0].area == pytest.approx(0.01, rel=0.06)
    assert patches[1].centre[0] == pytest.approx(0.2, abs=0.003)


def test_min_area_and_determinism(scene, kp):
    pts = _segment(scene, kp, Box((0.0, 0.0, 0.6), (0.12, 0.08, 0.1), label=1))
    assert find_patches(pts, min_area=0.02) == []
    a = find_patches(pts, seed=3)
    b = find_patches(pts, seed=3)
    assert [p.area for p in a] == [p.area for p in b]


def test_noisy_face_still_one_patch(scene, kp):
    pts = _segment(scene, kp, Box((0.0, 0.0, 0.6), (0.12, 0.08, 0.1), label=1))
    noisy = pts + np.random.default_rng(0).normal(0.0, 0.0008, pts.shape)
    patches = find_patches(noisy)
    assert len(patches) == 1
    assert abs(patches[0].normal @ np.array([0.0, 0.0, -1.0])) > np.cos(np.radians(2))
    assert patches[0].residual < 0.002


def test_too_few_points():
    assert find_patches(np.zeros((0, 3))) == []
    assert find_patches(np.array([[0.0, 0.0, 1.0], [0.01, 0.0, 1.0]])) == []
    collinear = np.stack([np.linspace(0, 0.1, 50), np.zeros(50), np.ones(50)], axis=1)
    assert find_patches(collinear, voxel_size=0.0) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_area": -1.0}, "min_area"),
        ({"voxel_size": np.nan}, "voxel_size"),
        ({"distance_threshold": 0.0}, "distance_threshold"),
        ({"max_planes": 0}, "max_planes"),
        ({"cluster_eps": -0.1}, "cluster_eps"),
    ],
)
def test_bad_parameters(kwargs, match):
    pts = np.random.default_rng(0).random((20, 3))
    with pytest.raises(PerceptionError, match=match):
        find_patches(pts, **kwargs)


def test_bad_points():
    with pytest.raises(PerceptionError, match="NaN"):
        find_patches(np.array([[0.0, 0.0, np.nan]] * 5))
    with pytest.raises(PerceptionError, match=r"\(N, 3\)"):
        find_patches(np.zeros((5, 4)))


def test_bad_seed():
    with pytest.raises(PerceptionError, match="seed"):
        find_patches(np.zeros((5, 3)), seed=-1)


@pytest.mark.parametrize("eps", [0.004, 0.009, 0.02])
def test_dbscan_matches_open3d(eps):
    import open3d as o3d

    from perception.patches import _dbscan

    rng = np.random.default_rng(7)
    pts = np.concatenate([rng.uniform(0, 0.1, (3000, 3)) * [1, 1, 0.01], rng.uniform(0, 0.2, (300, 3))])
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(pts)
    ref = np.asarray(pcd.cluster_dbscan(eps=eps, min_points=3))
    assert np.array_equal(_dbscan(pts, eps, 3), ref)
