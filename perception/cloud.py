"""Depth image -> point cloud, and instance masks -> 3-D segments.

Back-projection (pixel centres at integer coordinates):
    x = (u - cx) / fx * z,  y = (v - cy) / fy * z,  z = depth[v, u]
NaN and zero depths are "no return" and produce no point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .common import CameraIntrinsics, PerceptionError, check_depth, check_points, frozen

if TYPE_CHECKING:
    import open3d


def _rays(k: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray]:
    rx = ((np.arange(k.width, dtype=np.float64) - k.cx) / k.fx).astype(np.float32)
    ry = ((np.arange(k.height, dtype=np.float64) - k.cy) / k.fy).astype(np.float32)
    return rx, ry


def depth_to_point_image(depth: np.ndarray, intrinsics: object) -> np.ndarray:
    """(H, W, 3) float32 camera-frame points; NaN where there is no return."""
    k = CameraIntrinsics.from_any(intrinsics)
    d = check_depth(depth, k)
    rx, ry = _rays(k)
    z = np.where(d > 0, d, np.float32(np.nan))
    out = np.empty((k.height, k.width, 3), dtype=np.float32)
    np.multiply(z, rx[None, :], out=out[..., 0])
    np.multiply(z, ry[:, None], out=out[..., 1])
    out[..., 2] = z
    return out


def valid_mask(depth: np.ndarray) -> np.ndarray:
    """Pixels with a return (finite, > 0)."""
    d = check_depth(depth)
    with np.errstate(invalid="ignore"):
        return d > 0  # NaN compares False


def depth_to_points(
    depth: np.ndarray,
    intrinsics: object,
    *,
    mask: np.ndarray | None = None,
    max_depth: float | None = None,
) -> np.ndarray:
    """(N, 3) float64 camera-frame points of valid pixels, in row-major pixel order.

    `mask` (bool, H x W) restricts to selected pixels; `max_depth` drops farther returns.
    """
    k = CameraIntrinsics.from_any(intrinsics)
    d = check_depth(depth, k)
    with np.errstate(invalid="ignore"):
        sel = d > 0
        if max_depth is not None:
            if isinstance(max_depth, bool) or not isinstance(max_depth, (int, float)) or not max_depth > 0:
                raise PerceptionError(f"max_depth must be a positive number, got {max_depth!r}")
            sel &= d <= max_depth
    if mask is not None:
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != d.shape:
            got = f"{getattr(mask, 'dtype', type(mask).__name__)} {getattr(mask, 'shape', '')}"
            raise PerceptionError(f"mask must be a bool array of shape {d.shape}, got {got}")
        sel &= mask
    v, u = np.nonzero(sel)
    z = d[v, u].astype(np.float64)
    pts = np.empty((z.size, 3), dtype=np.float64)
    pts[:, 0] = (u - k.cx) / k.fx * z
    pts[:, 1] = (v - k.cy) / k.fy * z
    pts[:, 2] = z
    return pts


def to_open3d(points: np.ndarray) -> open3d.geometry.PointCloud:  # open3d imported at the call: it is slow to load
    """An open3d PointCloud holding a copy of `points` (N x 3)."""
    import open3d as o3d

    pts = check_points(points)
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(np.array(pts, dtype=np.float64, order="C"))
    return pcd


@dataclass(frozen=True, slots=True, eq=False)
class Segment:
    """The 3-D points of one instance label, with summary geometry (camera frame, metres)."""

    label: int
    points: np.ndarray  # (N, 3) float64, read-only
    centroid: np.ndarray  # (3,)
    lower: np.ndarray  # (3,) axis-aligned bounds
    upper: np.ndarray  # (3,)

    @property
    def size(self) -> int:
        return int(self.points.shape[0])

    @property
    def extent(self) -> np.ndarray:
        return self.upper - self.lower


def segment_from_points(label: int, points: np.ndarray) -> Segment:
    """A Segment (with centroid and bounds) from (N >= 1, 3) points."""
    pts = check_points(points)
    if pts.shape[0] == 0:
        raise PerceptionError(f"segment {label} has no points")
    return _segment(int(label), np.ascontiguousarray(pts.T))


def _segment(label: int, cols: np.ndarray) -> Segment:
    # cols is (3, N) contiguous: reductions along rows are much faster than down (N, 3) columns.
    return Segment(
        label,
        frozen(np.array(cols.T, dtype=np.float64, order="C")),
        frozen(cols.mean(axis=1)),
        frozen(cols.min(axis=1)),
        frozen(cols.max(axis=1)),
    )


def segments_from_labels(
    depth: np.ndarray,
    labels: np.ndarray,
    intrinsics: object,
    *,
    background: int = 0,
    min_points: int = 1,
) -> dict[int, Segment]:
    """Project a per-pixel instance label image to 3-D segments, keyed by label.

    Pixels with label `background` or without a depth return are skipped; labels with fewer
    than `min_points` valid points are dropped. An empty scene gives an empty dict.
    """
    k = CameraIntrinsics.from_any(intrinsics)
    d = check_depth(depth, k)
    if not isinstance(labels, np.ndarray) or not np.issubdtype(labels.dtype, np.integer):
        raise PerceptionError(f"labels must be an integer numpy array, got {getattr(labels, 'dtype', type(labels))}")
    if labels.shape != d.shape:
        raise PerceptionError(f"labels shape {labels.shape} does not match depth shape {d.shape}")
    if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 1:
        raise PerceptionError(f"min_points must be a positive integer, got {min_points!r}")
    with np.errstate(invalid="ignore"):
        sel = (d > 0) & (labels != background)
    v, u = np.nonzero(sel)
    if v.size == 0:
        return {}
    lab = labels[v, u]
    key = lab.astype(np.uint16) if lab.min() >= 0 and lab.max() < 65536 else lab  # uint16: radix sort
    order = np.argsort(key, kind="stable")
    lab, v, u = lab[order], v[order], u[order]
    z = d[v, u].astype(np.float64)
    cols = np.empty((3, z.size), dtype=np.float64)
    cols[0] = (u - k.cx) / k.fx * z
    cols[1] = (v - k.cy) / k.fy * z
    cols[2] = z
    uniq, starts, counts = np.unique(lab, return_index=True, return_counts=True)
    out: dict[int, Segment] = {}
    for label, s, n in zip(uniq.tolist(), starts.tolist(), counts.tolist(), strict=True):
        if n >= min_points:
            out[int(label)] = _segment(int(label), cols[:, s : s + n])
    return out
