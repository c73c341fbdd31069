"""Approximately flat patches on a segment (e.g. candidate suction/contact faces).

Method: voxel-downsample, estimate normals (open3d, oriented toward the camera at the
origin), then iteratively fit planes by RANSAC (`_ransac_plane`, numpy). The inliers of each
plane are kept only where their normal agrees with the plane's normal (so a plane does not
swallow the edge of a neighbouring face), then split into spatially connected pieces
(open3d DBSCAN); each piece, plus the on-plane points next to it that failed the normal test
(normals blur within a few mm of an edge), is a patch. Area is the area of the convex hull of the piece
projected onto its plane (exact for convex faces, an over-estimate for non-convex ones).
Deterministic: the same points and seed give bit-identical patches in any process or thread.
The RANSAC draws its samples from a generator local to the call (`numpy.random.default_rng(seed)`)
and evaluates them in a fixed order. (open3d's `segment_plane` is not: its iterations run in
parallel and its early stop depends on which finish first, and its seed is process-global.)
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


RANSAC_ITERATIONS = 200
RANSAC_PROBABILITY = 0.99999999  # open3d's default: stop once a better plane is this unlikely
_RANSAC_CHUNK = 32  # hypotheses evaluated per batch (the stop test runs per hypothesis all the same)


def _ransac_plane(
    pts: np.ndarray,
    dist: float,
    rng: np.random.Generator,
    iterations: int = RANSAC_ITERATIONS,
    probability: float = RANSAC_PROBABILITY,
) -> tuple[np.ndarray, np.ndarray]:
    """RANSAC plane on `pts` (N >= 3): unit normal (least squares on the inliers) and the inlier indices (ascending).

    As open3d's `segment_plane(dist, 3, iterations, probability)`, but deterministic: each hypothesis is the plane
    through 3 distinct points drawn from `rng`; its inliers are the points closer than `dist`; the best hypothesis
    has the most inliers, then the lowest RMS inlier distance, then the lowest index. Hypotheses are taken in order
    and the search stops before hypothesis k once k exceeds log(1 - probability) / log(1 - fitness^3) for the best
    fitness (inlier fraction) among the first k, as open3d does sequentially. The final inliers are those of the best
    hypothesis; the normal is refitted to them. Returns an empty index array when every sample is degenerate.
    """
    n = pts.shape[0]
    # Three distinct indices per hypothesis, uniformly: a in [0, n), b in [0, n) minus a, c minus both.
    a = rng.integers(0, n, iterations)
    b = rng.integers(0, n - 1, iterations)
    b += b >= a
    c = rng.integers(0, n - 2, iterations)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    c += c >= lo
    c += c >= hi
    normal = np.cross(pts[b] - pts[a], pts[c] - pts[a])
    norm = np.sqrt(np.sum(normal * normal, axis=1))
    valid = norm > 0
    normal[valid] /= norm[valid, None]
    offset = -np.sum(normal * pts[a], axis=1)
    log_miss = math.log(1.0 - probability) if probability < 1.0 else -math.inf
    x, y, z = (np.ascontiguousarray(pts[:, i : i + 1]) for i in range(3))
    best = (-1, math.inf, -1)  # (inliers, RMS, hypothesis) of the best so far
    for start in range(0, iterations, _RANSAC_CHUNK):
        stop = min(start + _RANSAC_CHUNK, iterations)
        nk = normal[start:stop]
        # Element-wise (no BLAS), so each distance is computed the same way whatever the threading.
        d = np.abs(x * nk[:, 0] + y * nk[:, 1] + z * nk[:, 2] + offset[start:stop])  # (n, chunk)
        inl = d < dist
        count = np.count_nonzero(inl, axis=0)
        count[~valid[start:stop]] = 0
        sq = np.sum(np.where(inl, d * d, 0.0), axis=0)
        done = False
        for j in range(stop - start):
            k = start + j
            if best[0] > 0:
                fitness = best[0] / n
                if fitness >= 1.0 or k > log_miss / math.log1p(-(fitness**3)):
                    done = True  # open3d's early stop, decided in hypothesis order
                    break
            cnt = int(count[j])
            if cnt == 0:
                continue
            rms = math.sqrt(float(sq[j]) / cnt)
            if cnt > best[0] or (cnt == best[0] and rms < best[1]):
                best = (cnt, rms, k)
        if done:
            break
    if best[0] < 3:
        return np.zeros(3), np.zeros(0, dtype=np.int64)
    nk, ok = normal[best[2]], offset[best[2]]
    inliers = np.flatnonzero(np.abs(x * nk[0] + y * nk[1] + z * nk[2] + ok)[:, 0] < dist)  # as counted above
    q = pts[inliers] - pts[inliers].mean(axis=0)
    cov = np.array([[np.sum(q[:, i] * q[:, j]) for j in range(3)] for i in range(3)])  # no BLAS either
    return np.linalg.eigh(cov)[1][:, 0], inliers  # least-squares normal: the smallest eigenvalue's vector


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
    rng = np.random.default_rng(int(seed))
    patches: list[Patch] = []
    for _ in range(max_planes):
        if remaining.size < 3:
            break
        n, inliers = _ransac_plane(all_pts[remaining], dist, rng)
        if inliers.size < 3:
            break
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
