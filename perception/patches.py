"""Approximately flat patches on a segment (e.g. candidate suction/contact faces).

Method: voxel-downsample, estimate normals (open3d, oriented toward the camera at the
origin), then iteratively fit planes with open3d's RANSAC `segment_plane`. The inliers of each
plane are kept only where their normal agrees with the plane's normal (so a plane does not
swallow the edge of a neighbouring face), then split into spatially connected pieces
(open3d DBSCAN); each piece, plus the on-plane points next to it that failed the normal test
(normals blur within a few mm of an edge), is a patch. Area is the area of the convex hull of the piece
projected onto its plane (exact for convex faces, an over-estimate for non-convex ones).
Deterministic: the RANSAC seed is fixed per call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import ConvexHull, QhullError, cKDTree

from .common import PerceptionError, check_points, check_positive, frozen


@dataclass(frozen=True, slots=True, eq=False)
class Patch:
    """A flat patch: unit normal toward the camera, centroid, area (m^2), RMS plane residual (m)."""

    normal: np.ndarray  # (3,) unit, n . centre < 0 (faces the camera at the origin)
    centre: np.ndarray  # (3,) centroid of the patch's points
    area: float
    residual: float  # RMS point-to-plane distance of the patch's points
    points: np.ndarray  # (M, 3) the (downsampled) points of the patch


def _plane_area(pts: np.ndarray, normal: np.ndarray) -> float:
    a = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(normal, a)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    uv = np.stack([pts @ e1, pts @ e2], axis=1)
    if uv.shape[0] < 3:
        return 0.0
    try:
        return float(ConvexHull(uv).volume)  # 2-D "volume" is the area
    except QhullError:
        return 0.0  # degenerate (collinear) piece


def _dbscan(pts: np.ndarray, eps: float, min_points: int) -> np.ndarray:
    """DBSCAN labels (-1 = noise), as open3d's `cluster_dbscan` but via a k-d tree and connected components.

    Core points have >= `min_points` points (themselves included) within `eps`; clusters are the connected
    components of core points, numbered in order of their first point; a border point joins its core
    neighbours' lowest-numbered cluster.
    """
    n = pts.shape[0]
    pairs = cKDTree(pts).query_pairs(eps, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    core = np.bincount(pairs.ravel(), minlength=n) + 1 >= min_points
    both = core[i] & core[j]
    graph = coo_matrix((np.ones(int(both.sum()), dtype=np.int8), (i[both], j[both])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    uniq, first = np.unique(comp[core], return_index=True)
    renumber = np.zeros(int(comp.max()) + 1, dtype=np.int64)
    renumber[uniq[np.argsort(first)]] = np.arange(uniq.size)
    labels = np.full(n, -1, dtype=np.int64)
    labels[core] = renumber[comp[core]]
    border = np.full(n, n, dtype=np.int64)
    for a, b in ((i, j), (j, i)):
        m = ~core[a] & core[b]
        np.minimum.at(border, a[m], labels[b[m]])
    labels[border < n] = border[border < n]
    return labels


def find_patches(
    points: np.ndarray,
    *,
    min_area: float = 0.0005,
    voxel_size: float = 0.003,
    distance_threshold: float = 0.003,
    max_normal_angle_deg: float = 20.0,
    cluster_eps: float | None = None,
    max_planes: int = 10,
    seed: int = 0,
) -> list[Patch]:
    """Flat patches (area >= `min_area` m^2) on a segment's camera-frame points, largest first.

    `voxel_size` (m) downsamples first (0 disables it); `distance_threshold` (m) is the RANSAC
    inlier distance; `cluster_eps` (m, default 3 x voxel size) the connectivity radius that
    splits a plane into pieces. Fewer than 3 points give [].
    """
    import open3d as o3d

    pts = check_points(points)
    min_area = check_positive(min_area, "min_area", allow_zero=True)
    voxel = check_positive(voxel_size, "voxel_size", allow_zero=True)
    dist = check_positive(distance_threshold, "distance_threshold")
    angle = check_positive(max_normal_angle_deg, "max_normal_angle_deg")
    if isinstance(max_planes, bool) or not isinstance(max_planes, int) or max_planes < 1:
        raise PerceptionError(f"max_planes must be a positive integer, got {max_planes!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
        raise PerceptionError(f"seed must be an integer in [0, 2**31), got {seed!r}")
    if pts.shape[0] < 3:
        return []
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(np.array(pts, dtype=np.float64, order="C"))
    if voxel > 0:
        pcd = pcd.voxel_down_sample(voxel)
    spacing = voxel if voxel > 0 else float(np.median(np.asarray(pcd.compute_nearest_neighbor_distance())))
    eps = check_positive(cluster_eps, "cluster_eps") if cluster_eps is not None else 3.0 * max(spacing, 1e-6)
    if len(pcd.points) < 3:
        return []
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=eps, max_nn=12))
    pcd.orient_normals_towards_camera_location(np.zeros(3))
    all_pts = np.asarray(pcd.points).copy()
    all_nrm = np.asarray(pcd.normals).copy()
    remaining = np.arange(all_pts.shape[0])
    cos_max = math.cos(math.radians(angle))
    o3d.utility.random.seed(int(seed))
    patches: list[Patch] = []
    for _ in range(max_planes):
        if remaining.size < 3:
            break
        sub = o3d.geometry.PointCloud()
        sub.points = o3d.utility.Vector3dVector(all_pts[remaining])
        model, inliers = sub.segment_plane(dist, 3, 200)
        inliers = np.asarray(inliers, dtype=np.int64)
        if inliers.size < 3:
            break
        n = np.asarray(model[:3], dtype=np.float64)
        n /= np.linalg.norm(n)
        idx = remaining[inliers]
        if np.mean(all_pts[idx] @ n) > 0:
            n = -n  # face the camera
        agree = np.abs(all_nrm[idx] @ n) >= cos_max
        members = idx[agree]
        edge = all_pts[idx[~agree]]  # on the plane, but normals blurred by a neighbouring face
        # Points the plane claimed are consumed either way, so the loop always progresses.
        remaining = np.setdiff1d(remaining, idx, assume_unique=True)
        if members.size < 3:
            continue
        cl = _dbscan(all_pts[members], eps, 3)
        for c in range(int(cl.max()) + 1 if cl.size else 0):
            piece = all_pts[members[cl == c]]
            if piece.shape[0] < 3:
                continue
            if edge.shape[0]:
                # Give the piece back the on-plane points along its border that the normal test dropped.
                near, _ = cKDTree(piece).query(edge, distance_upper_bound=eps)
                piece = np.concatenate([piece, edge[np.isfinite(near)]])
            centre = piece.mean(axis=0)
            # Refit on the piece (least squares) for the reported normal and residual.
            _, _, vt = np.linalg.svd(piece - centre, full_matrices=False)
            pn = vt[2]
            if pn @ centre > 0:
                pn = -pn
            resid = float(np.sqrt(np.mean(((piece - centre) @ pn) ** 2)))
            area = _plane_area(piece, pn)
            if area >= min_area and area > 0:
                patches.append(Patch(frozen(pn), frozen(centre), area, resid, frozen(piece.copy())))
    patches.sort(key=lambda p: -p.area)
    return patches
