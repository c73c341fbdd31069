import math

import numpy as np
import pytest

from drivers.camera import Intrinsics
from drivers.sim.camera import Box, render
from perception.cloud import depth_to_points, segments_from_labels
from perception.occupancy import BinGeometry
from perception.patches import Patch, find_patches
from perception.sdf import bin_sdf
from planning.placement import PlanningError
from planning.suction import (
    Approach,
    Attach,
    CandidateReason,
    Extract,
    GuardedApproach,
    PlaceInTote,
    SuctionCandidate,
    pick_primitives,
    rank_suction_candidates,
)

# Bin opening centred on the optical axis 0.5 m ahead: 0.4 wide, 0.3 high, 0.35 deep.
BIN_Z = 0.5
BIN = BinGeometry((-0.2, 0.15, BIN_Z), 0.4, 0.3, 0.35)
BACK = Box((0.0, 0.0, BIN_Z + 0.36), (1.5, 1.5, 0.02), label=9)
TARGET = Box((0.0, 0.05, BIN_Z + 0.25), (0.12, 0.1, 0.1), label=1)  # front face at bin z 0.2
# A neighbour 5 cm in front of the target, covering all but a 4 cm strip on the left of its 12 cm front face.
BLOCKER = Box((0.03, 0.05, BIN_Z + 0.12), (0.10, 0.12, 0.06), label=2)
K = Intrinsics.from_fov(640, 480, 70.0)


def _scene(boxes):
    depth, labels = render(boxes, K)
    target = segments_from_labels(depth, labels, K)[1]
    sdf = bin_sdf(depth_to_points(depth, K), BIN, resolution=0.01)
    return target, find_patches(target.points), sdf


@pytest.fixture(scope="module")
def free_scene():
    return _scene([BACK, TARGET])


@pytest.fixture(scope="module")
def blocked_scene():
    return _scene([BACK, TARGET, BLOCKER])


def _front(patches):
    return max(patches, key=lambda p: -p.normal[2])  # the face looking straight at the camera


def test_free_target_candidates_lie_on_the_target(free_scene):
    target, patches, sdf = free_scene
    res = rank_suction_candidates(target, patches, sdf)
    assert res.ok and res.reason is CandidateReason.OK
    best = res.best
    assert best.patch is _front(patches)
    lo, hi = target.lower - 1e-3, target.upper + 1e-3
    for c in res.candidates:
        assert np.all(c.point >= lo) and np.all(c.point <= hi)
        assert np.min(np.linalg.norm(target.points - c.point, axis=1)) < 0.005
        assert c.clearance >= 0.015
        assert np.allclose(c.approach, -c.patch.normal)
    assert best.point[2] == pytest.approx(BIN_Z + 0.2, abs=0.003)
    # Nearest the centroid: the front face's middle.
    assert best.point[:2] == pytest.approx([0.0, 0.05], abs=0.01)
    assert [c.score for c in res.candidates] == sorted((c.score for c in res.candidates), reverse=True)


def test_neighbour_in_front_lowers_clearance(free_scene, blocked_scene):
    free = rank_suction_candidates(*free_scene)
    target, patches, sdf = blocked_scene
    blocked = rank_suction_candidates(target, patches, sdf)
    front_free = free.best
    assert front_free.patch is _front(free_scene[1])
    cand = next(c for c in blocked.candidates if c.patch is _front(patches))
    # The cup still fits on the uncovered strip (left of the neighbour), but with less room to spare.
    assert cand.point[0] < -0.02 - 0.015
    assert 0.015 <= cand.clearance < front_free.clearance - 0.002
    assert cand.score < front_free.score - 0.05
    # The clearance measured straight from the free face's suction point, now blocked, is below the cup.
    n = front_free.patch.normal
    path = front_free.point + np.linspace(0.035, 0.185, 31)[:, None] * n
    assert np.nanmin(sdf.query(path)) < 0.015


def test_fully_covered_face_is_rejected_with_reason(free_scene):
    target, patches, _ = free_scene
    wall = Box((0.0, 0.05, BIN_Z + 0.12), (0.3, 0.2, 0.04), label=3)  # 4 cm off the whole face
    depth, _ = render([BACK, TARGET, wall], K)
    sdf = bin_sdf(depth_to_points(depth, K), BIN, resolution=0.01)
    res = rank_suction_candidates(target, [_front(patches)], sdf)
    assert not res.ok and res.candidates == ()
    assert res.reason is CandidateReason.BLOCKED
    assert res.rejected[0].reason is CandidateReason.BLOCKED


def _sub_patch(patch: Patch, keep: np.ndarray) -> Patch:
    pts = patch.points[keep]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    area = float((hi[0] - lo[0]) * (hi[1] - lo[1]))
    return Patch(patch.normal, pts.mean(axis=0), area, patch.residual, pts)


def test_wider_face_ranks_above_tiny_one_at_equal_clearance(free_scene):
    target, patches, sdf = free_scene
    front = _front(patches)
    x = front.points[:, 0]
    wide = _sub_patch(front, x < 0.03)  # 9 cm of the 12 cm face
    tiny = _sub_patch(front, x > 0.02)  # the right 4 cm strip
    # A huge centroid scale makes the centre-of-mass term equal for both: only clearance and area differ.
    res = rank_suction_candidates(target, [tiny, wide], sdf, centroid_scale_m=1e9)
    assert res.ok and len(res.candidates) == 2
    a, b = res.candidates
    assert a.patch is wide and b.patch is tiny
    assert min(a.clearance, 0.025) == min(b.clearance, 0.025)  # both saturated: equal clearance term


def test_patch_smaller_than_cup_is_rejected(free_scene):
    target, patches, sdf = free_scene
    front = _front(patches)
    keep = np.linalg.norm(front.points[:, :2] - front.centre[:2], axis=1) < 0.01
    small = Patch(front.normal, front.centre, math.pi * 0.01**2, 0.0, front.points[keep])
    res = rank_suction_candidates(target, [small], sdf)
    assert res.reason is CandidateReason.TOO_SMALL and res.candidates == ()


def test_empty_patches_give_no_candidates(free_scene):
    target, _, sdf = free_scene
    res = rank_suction_candidates(target, [], sdf)
    assert not res.ok and res.candidates == () and res.reason is CandidateReason.NO_PATCHES and res.detail
    assert res.best is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cup_radius_m": 0.0},
        {"cup_radius_m": -0.01},
        {"cup_radius_m": float("nan")},
        {"cup_radius_m": True},
        {"extraction_distance_m": 0},
        {"min_area_m2": -1.0},
        {"samples": 1},
        {"samples": 2.5},
        {"min_seal_coverage": 1.5},
        {"start_offset_m": float("inf")},
    ],
)
def test_validation_errors(free_scene, kwargs):
    target, patches, sdf = free_scene
    with pytest.raises(PlanningError):
        rank_suction_candidates(target, patches, sdf, **kwargs)


def test_bad_argument_types(free_scene):
    target, patches, sdf = free_scene
    with pytest.raises(PlanningError):
        rank_suction_candidates(target.points, patches, sdf)
    with pytest.raises(PlanningError):
        rank_suction_candidates(target, patches, sdf.values)
    with pytest.raises(PlanningError):
        rank_suction_candidates(target, patches[0], sdf)
    with pytest.raises(PlanningError):
        rank_suction_candidates(target, [object()], sdf)


def test_deterministic(free_scene):
    a = rank_suction_candidates(*free_scene)
    b = rank_suction_candidates(*free_scene)
    assert [(c.patch_index, c.score, tuple(c.point)) for c in a.candidates] == [
        (c.patch_index, c.score, tuple(c.point)) for c in b.candidates
    ]


def test_pick_primitives_sequence(free_scene):
    cand = rank_suction_candidates(*free_scene).best
    steps = pick_primitives(cand, standoff_m=0.05, extraction_distance_m=0.12)
    assert [type(s) for s in steps] == [Approach, GuardedApproach, Attach, Extract, PlaceInTote]
    app, guard, attach, extract, place = steps
    assert np.allclose(app.position, cand.point + 0.05 * cand.patch.normal)
    assert np.allclose(app.direction, cand.approach) and np.allclose(guard.direction, cand.approach)
    assert guard.max_travel_m == pytest.approx(0.06)
    assert 0 < guard.contact_force_n < guard.force_limit_n
    assert attach.vacuum_threshold_kpa < 0 and attach.timeout_s > 0
    assert np.allclose(extract.direction, -cand.approach) and extract.distance_m == 0.12
    assert extract.force_limit_n > 0 and place.release_s >= 0


def test_pick_primitives_validation(free_scene):
    cand = rank_suction_candidates(*free_scene).best
    with pytest.raises(PlanningError):
        pick_primitives("nope")
    with pytest.raises(PlanningError):
        pick_primitives(cand, contact_force_n=30.0, force_limit_n=20.0)
    with pytest.raises(PlanningError):
        pick_primitives(cand, vacuum_threshold_kpa=10.0)
    with pytest.raises(PlanningError):
        pick_primitives(cand, standoff_m=0)
    bad = SuctionCandidate(cand.patch, 0, cand.point, np.array([0.0, 0.0, 2.0]), 0.03, 1.0, 0.0)
    with pytest.raises(PlanningError):
        pick_primitives(bad)


def _seeded_frame(seed: int):
    from drivers.sim.world import generate_bin
    from drivers.sim.world_render import CameraPose, render_bin

    b = generate_bin(seed, density=0.9)
    v = render_bin(b)
    rng = np.random.default_rng(seed)
    depth = (v.depth_m + rng.normal(0.0, 1.0, v.depth_m.shape) * 0.0025 * np.nan_to_num(v.depth_m) ** 2)
    depth = depth.astype(np.float32)
    origin = CameraPose().to_camera(b, np.zeros((1, 3)))[0]
    geom = BinGeometry(tuple(float(x) for x in origin), b.width_mm / 1e3, b.height_mm / 1e3, b.depth_mm / 1e3)
    segments = segments_from_labels(depth, v.instance, v.intrinsics)
    sdf = bin_sdf(depth_to_points(depth, v.intrinsics), geom, resolution=0.01)  # once per frame, shared
    return sorted(segments.values(), key=lambda s: -s.size)[:3], sdf


def _brute_force_point(patch, centroid, cup_r, min_cov):
    """The original suction point: seal coverage of every patch point, then the nearest to the centroid."""
    from scipy.spatial import cKDTree

    pts, n = np.asarray(patch.points), np.asarray(patch.normal)
    expected = pts.shape[0] / patch.area * math.pi * cup_r * cup_r
    ok = cKDTree(pts).query_ball_point(pts, cup_r, return_length=True) >= min_cov * expected
    if not ok.any():
        return None
    rel = pts[ok] - centroid
    lateral = rel - np.outer(rel @ n, n)
    best = pts[ok][int(np.argmin(np.einsum("ij,ij->i", lateral, lateral)))]
    return best - ((best - patch.centre) @ n) * n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_keeps_the_top_candidate(seed, monkeypatch):
    import open3d as o3d

    import perception.patches as patches_mod
    from planning.suction import _suction_point

    def o3d_dbscan(pts, eps, min_points):  # the clustering the fast path replaced
        pcd = o3d.geometry.PointCloud()
        pcd.points = o3d.utility.Vector3dVector(pts)
        return np.asarray(pcd.cluster_dbscan(eps=eps, min_points=min_points))

    targets, sdf = _seeded_frame(seed)
    for target in targets:
        patches = find_patches(target.points)
        for p in patches:  # chunked early-stop search == exhaustive search, exactly
            fast = _suction_point(p, target.centroid, 0.015, 0.75)
            ref = _brute_force_point(p, target.centroid, 0.015, 0.75)
            assert (fast is None and ref is None) or np.array_equal(fast, ref)
        new = rank_suction_candidates(target, patches, sdf)
        with monkeypatch.context() as m:
            m.setattr(patches_mod, "_dbscan", o3d_dbscan)
            old = rank_suction_candidates(target, find_patches(target.points), sdf)
        assert new.reason == old.reason
        if old.best is not None:
            # RANSAC draws differ between the two clusterings: same face, point within a cup radius.
            assert float(new.best.approach @ old.best.approach) > 0.99
            assert np.linalg.norm(new.best.point - old.best.point) < 0.015
            assert abs(new.best.score - old.best.score) < 0.05
