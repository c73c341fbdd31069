import math

import numpy as np
import pytest

from drivers.camera import Intrinsics
from drivers.sim.camera import Box
from perception.cloud import depth_to_point_image, depth_to_points, segments_from_labels, to_open3d, valid_mask
from perception.common import CameraIntrinsics, PerceptionError


def test_points_of_box_front_face_have_the_right_coordinates(scene, kp):
    box = Box((0.05, -0.03, 0.6), (0.1, 0.08, 0.1), label=3)
    depth, labels = scene([box])
    pts = depth_to_points(depth, kp)
    assert pts.shape == (np.count_nonzero(labels == 3), 3)
    assert np.allclose(pts[:, 2], 0.55, atol=1e-6)
    assert pts[:, 0].min() >= 0.0 - 1e-6 and pts[:, 0].max() <= 0.1 + 1e-6
    assert pts[:, 1].min() >= -0.07 - 1e-6 and pts[:, 1].max() <= 0.01 + 1e-6
    # The face is sampled edge to edge, to within one pixel footprint.
    px = 0.55 / kp.fx
    assert pts[:, 0].min() < 0.0 + 1.5 * px and pts[:, 0].max() > 0.1 - 1.5 * px
    assert pts[:, 1].min() < -0.07 + 1.5 * px and pts[:, 1].max() > 0.01 - 1.5 * px


def test_backprojection_formula_for_single_pixels(kp):
    depth = np.full((kp.height, kp.width), np.nan, dtype=np.float32)
    depth[10, 20] = 2.0
    depth[int(kp.cy), int(kp.cx)] = 1.0
    pts = depth_to_points(depth, kp)
    assert np.allclose(pts[0], [(20 - kp.cx) / kp.fx * 2.0, (10 - kp.cy) / kp.fy * 2.0, 2.0])
    assert np.allclose(pts[1], [0.0, 0.0, 1.0])  # the principal point looks along +z


def test_point_image_matches_point_list(scene, kp):
    depth, _ = scene([Box((0.0, 0.0, 0.8), (0.3, 0.2, 0.1))])
    img = depth_to_point_image(depth, kp)
    assert img.shape == (kp.height, kp.width, 3) and img.dtype == np.float32
    ok = valid_mask(depth)
    assert np.array_equal(np.isnan(img[..., 2]), ~ok)
    assert np.allclose(img[ok], depth_to_points(depth, kp), atol=1e-6)


def test_mask_and_max_depth_select_points(scene, kp):
    depth, labels = scene([Box((0.0, 0.0, 0.6), (0.1, 0.1, 0.1), 1), Box((0.2, 0.0, 1.0), (0.1, 0.1, 0.1), 2)])
    assert len(depth_to_points(depth, kp, mask=labels == 2)) == np.count_nonzero(labels == 2)
    near = depth_to_points(depth, kp, max_depth=0.7)
    assert len(near) == np.count_nonzero(labels == 1)


def test_segment_centroids_match_boxes(scene, kp):
    # Thin boxes: the side faces the camera sees off-axis hold only a few pixels.
    boxes = [Box((-0.1, 0.05, 0.7), (0.08, 0.06, 0.004), 1), Box((0.12, -0.04, 0.9), (0.1, 0.1, 0.004), 7)]
    depth, labels = scene(boxes)
    segs = segments_from_labels(depth, labels, kp)
    assert set(segs) == {1, 7}
    for b in boxes:
        s = segs[b.label]
        face = np.array([b.center[0], b.center[1], b.center[2] - b.size[2] / 2])
        assert np.allclose(s.centroid[:2], face[:2], atol=0.002)
        assert s.lower[2] == pytest.approx(face[2], abs=1e-5)
        assert np.all(s.extent[:2] <= np.array(b.size[:2]) + 1e-6)
        assert s.size == np.count_nonzero(labels == b.label)
        assert not s.points.flags.writeable
        assert len(to_open3d(s.points).points) == s.size  # read-only arrays are fine


def test_partially_occluded_segment_and_min_points(scene, kp):
    front = Box((0.0, 0.0, 0.5), (0.05, 0.05, 0.02), 1)
    back = Box((0.0, 0.0, 1.0), (0.3, 0.3, 0.1), 2)
    depth, labels = scene([front, back])
    segs = segments_from_labels(depth, labels, kp, min_points=10**6)
    assert segs == {}
    segs = segments_from_labels(depth, labels, kp)
    assert segs[2].lower[2] == pytest.approx(0.95, abs=1e-5)


def test_empty_scene_gives_empty_results(scene, kp):
    depth, labels = scene([])
    assert np.isnan(depth).all()
    pts = depth_to_points(depth, kp)
    assert pts.shape == (0, 3)
    assert segments_from_labels(depth, labels, kp) == {}
    assert len(to_open3d(pts).points) == 0


def test_open3d_cloud_holds_the_points(scene, kp):
    depth, _ = scene([Box((0.0, 0.0, 0.6), (0.1, 0.1, 0.1))])
    pts = depth_to_points(depth, kp)
    pcd = to_open3d(pts)
    assert np.allclose(np.asarray(pcd.points), pts)


def test_zero_depth_is_no_return(kp):
    depth = np.zeros((kp.height, kp.width), dtype=np.float32)
    assert depth_to_points(depth, kp).shape == (0, 3)


@pytest.mark.parametrize(
    ("depth", "match"),
    [
        (np.zeros((480, 640), dtype=np.float64), "float32"),
        (np.zeros((480, 640, 1), dtype=np.float32), "2-D"),
        (np.zeros((48, 64), dtype=np.float32), "does not match intrinsics"),
        (np.full((480, 640), np.inf, dtype=np.float32), "infinite"),
        (np.full((480, 640), -1.0, dtype=np.float32), "negative"),
        ([[1.0]], "numpy array"),
    ],
)
def test_bad_depth_is_rejected(kp, depth, match):
    with pytest.raises(PerceptionError, match=match):
        depth_to_points(depth, kp)


@pytest.mark.parametrize(
    "values",
    [
        (640, 480, math.nan, 500.0, 320.0, 240.0),
        (640, 480, 500.0, 500.0, math.inf, 240.0),
        (640, 480, 0.0, 500.0, 320.0, 240.0),
        (0, 480, 500.0, 500.0, 320.0, 240.0),
        (640.5, 480, 500.0, 500.0, 320.0, 240.0),
        (640, 480, 500.0),
    ],
)
def test_bad_intrinsics_are_rejected(values):
    with pytest.raises(PerceptionError):
        CameraIntrinsics.from_any(values)


def test_intrinsics_from_driver_and_array(k):
    a = CameraIntrinsics.from_any(k)
    b = CameraIntrinsics.from_any(k.as_array())
    assert a == b and a.width == 640


def test_bad_labels_and_mask_are_rejected(scene, kp):
    depth, labels = scene([Box((0.0, 0.0, 0.6), (0.1, 0.1, 0.1))])
    with pytest.raises(PerceptionError, match="integer"):
        segments_from_labels(depth, labels.astype(np.float32), kp)
    with pytest.raises(PerceptionError, match="shape"):
        segments_from_labels(depth, labels[:10], kp)
    with pytest.raises(PerceptionError, match="bool"):
        depth_to_points(depth, kp, mask=labels)
    with pytest.raises(PerceptionError, match="NaN"):
        to_open3d(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(PerceptionError, match=r"\(N, 3\)"):
        to_open3d(np.zeros((4, 2)))
    with pytest.raises(PerceptionError, match="max_depth"):
        depth_to_points(depth, Intrinsics.from_fov(), max_depth=-1.0)
