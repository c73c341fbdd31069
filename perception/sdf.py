"""Signed distance field of a bin's interior on a voxel grid (metres; free > 0, occupied < 0).

Occupancy from camera-frame points, in the bin frame of `perception.occupancy.BinGeometry`:

* a voxel holding a point is occupied;
* everything behind an occupied voxel along the camera's view ray, up to the bin's back, is
  also marked occupied: the camera cannot see it, so it is *unknown*, and we treat unknown as
  occupied (conservative for a planner). `shadow="ray"` casts true perspective rays from the
  camera centre (the camera-frame origin); `shadow="column"` casts straight along bin z (the
  orthographic approximation); `shadow="none"` marks only the voxels holding points;
* points in front of the opening (an item sticking out) shadow the first slice they cover;
* with `walls=True` the side walls and the back are solid (the opening is not), so distances
  near the walls are measured to the walls too.

The distance is Euclidean (scipy.ndimage.distance_transform_edt) between voxel centres,
shifted by half a voxel so the zero level lies on voxel faces: a free voxel next to an
occupied one has +r/2, an occupied voxel next to a free one -r/2.
Voxels are indexed [ix, iy, iz], voxel (ix, iy, iz) centred at bin ((ix+.5) r, (iy+.5) r, (iz+.5) r).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .common import PerceptionError, check_points, check_positive, frozen
from .occupancy import BinGeometry

MAX_VOXELS = 20_000_000


@dataclass(frozen=True, slots=True, eq=False)
class SignedDistanceField:
    bin: BinGeometry
    resolution: float
    values: np.ndarray  # (nx, ny, nz) float32 metres
    occupied: np.ndarray  # (nx, ny, nz) bool (points + their shadows; walls not included)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.values.shape  # type: ignore[return-value]

    def query(self, points: np.ndarray, *, outside: float = np.nan) -> np.ndarray:
        """Trilinearly interpolated SDF at camera-frame points (N, 3) -> (N,) float64.

        Points outside the voxel grid's extent get `outside` (NaN by default).
        """
        return query_sdf(self, points, outside=outside)


def _voxel_shape(geom: BinGeometry, r: float) -> tuple[int, int, int]:
    shape = tuple(max(1, math.ceil(s / r - 1e-9)) for s in (geom.width, geom.height, geom.depth))
    if math.prod(shape) > MAX_VOXELS:
        raise PerceptionError(f"resolution {r} m gives {shape} voxels; too fine for this bin (max {MAX_VOXELS})")
    return shape  # type: ignore[return-value]


def occupancy_voxels(
    points: np.ndarray, bin_geometry: BinGeometry, *, resolution: float = 0.01, shadow: str = "ray"
) -> np.ndarray:
    """(nx, ny, nz) bool occupancy (points + shadows) of the bin interior; see the module doc."""
    if not isinstance(bin_geometry, BinGeometry):
        raise PerceptionError(f"bin_geometry must be a BinGeometry, got {type(bin_geometry).__name__}")
    if shadow not in ("ray", "column", "none"):
        raise PerceptionError(f"shadow must be 'ray', 'column' or 'none', got {shadow!r}")
    r = check_positive(resolution, "resolution")
    pts = check_points(points)
    geom = bin_geometry
    nx, ny, nz = _voxel_shape(geom, r)
    oz = float(geom.origin[2])
    if shadow == "ray" and oz + 0.5 * r <= 0:
        raise PerceptionError(f"shadow='ray' needs the bin in front of the camera (origin z={oz} m)")
    occ = np.zeros((nx, ny, nz), dtype=bool)
    flat = occ.reshape(-1)

    def mark(cols: np.ndarray, ok: np.ndarray) -> None:
        """Occupy the voxels of bin-frame points given as (3, N) columns (overwritten) where `ok`."""
        ok &= cols[2] < geom.depth
        np.divide(cols, r, out=cols)
        np.floor(cols, out=cols)  # filter in float first: far-away points would overflow an int cast
        for axis, n in enumerate((nx, ny, nz)):
            ok &= (cols[axis] >= 0) & (cols[axis] < n)
        idx = cols[:, ok].astype(np.int64)
        flat[(idx[0] * ny + idx[1]) * nz + idx[2]] = True

    # Bin frame as (3, N) rows: row-wise work is much faster than down (N, 3) columns.
    cols = np.array(pts.T, dtype=np.float64, order="C")  # a copy: worked on in place
    cols -= np.asarray(geom.origin, dtype=np.float64)[:, None]
    np.negative(cols[1], out=cols[1])
    front = cols[2] < 0
    mark(cols, ~front)
    # Points in front of the opening occlude slice 0 where their ray crosses its centre plane.
    if front.any():
        p = pts[front]
        if shadow == "ray":
            z0 = oz + 0.5 * r
            ok = p[:, 2] > 0
            p = p[ok] * (z0 / p[ok, 2])[:, None]
        fb = geom.to_bin(p)
        fb[:, 2] = 0.0
        mark(np.array(fb.T, order="C"), np.ones(fb.shape[0], dtype=bool))
    if shadow == "column":
        occ = np.logical_or.accumulate(occ, axis=2)
    elif shadow == "ray":
        occ = _ray_shadow(occ, geom, r)
    return occ


def _ray_shadow(occ: np.ndarray, geom: BinGeometry, r: float) -> np.ndarray:
    """Perspective shadows from the camera centre, via a fine grid over ray directions.

    Each slice's occupancy is rasterised into a (tan x, tan y) direction grid (sampled at a
    pitch of half a voxel at the back, so no compounding of rounding from slice to slice); a
    voxel is shadowed when the direction through its centre was occupied in an earlier slice.
    """
    nx, ny, nz = occ.shape
    ox, oy, oz = (float(v) for v in geom.origin)
    zc = oz + (np.arange(nz) + 0.5) * r
    xs = ox + (np.arange(nx) + 0.5) * r  # camera x of the voxel centres
    ys = oy - (np.arange(ny) + 0.5) * r  # camera y
    xe = np.array([ox, ox + geom.width])
    ye = np.array([oy - geom.height, oy])
    ax_lo, ax_hi = min((xe[:, None] / zc[[0, -1]]).ravel()), max((xe[:, None] / zc[[0, -1]]).ravel())
    ay_lo, ay_hi = min((ye[:, None] / zc[[0, -1]]).ravel()), max((ye[:, None] / zc[[0, -1]]).ravel())
    da = r / (2.0 * zc[-1])
    ax = ax_lo + np.arange(math.ceil((ax_hi - ax_lo) / da) + 1) * da
    ay = ay_lo + np.arange(math.ceil((ay_hi - ay_lo) / da) + 1) * da
    seen = np.zeros((ax.size, ay.size), dtype=bool)  # directions blocked so far
    out = occ.copy()
    for k in range(nz):
        if k > 0:
            iax = np.clip(np.rint((xs / zc[k] - ax_lo) / da).astype(np.int64), 0, ax.size - 1)
            iay = np.clip(np.rint((ys / zc[k] - ay_lo) / da).astype(np.int64), 0, ay.size - 1)
            out[:, :, k] |= seen[np.ix_(iax, iay)]
        if occ[:, :, k].any():
            jx = np.floor((ax * zc[k] - ox) / r).astype(np.int64)
            jy = np.floor((oy - ay * zc[k]) / r).astype(np.int64)
            vx = (jx >= 0) & (jx < nx)
            vy = (jy >= 0) & (jy < ny)
            hit = occ[:, :, k][np.ix_(np.clip(jx, 0, nx - 1), np.clip(jy, 0, ny - 1))]
            seen |= hit & vx[:, None] & vy[None, :]
    return out


def bin_sdf(
    points: np.ndarray,
    bin_geometry: BinGeometry,
    *,
    resolution: float = 0.01,
    shadow: str = "ray",
    walls: bool = True,
) -> SignedDistanceField:
    """Signed distance field (m) of the bin interior from camera-frame points; see the module doc.

    With no points and `walls=False` there is nothing to measure to: every voxel is +inf.
    """
    occ = occupancy_voxels(points, bin_geometry, resolution=resolution, shadow=shadow)
    r = float(resolution)
    solid = np.pad(occ, ((1, 1), (1, 1), (0, 1)), constant_values=True) if walls else occ
    values: np.ndarray
    if not solid.any():
        values = np.full(occ.shape, np.inf, dtype=np.float32)
    else:
        d_free = ndimage.distance_transform_edt(~solid)  # free voxels: distance to nearest solid centre
        d_solid = ndimage.distance_transform_edt(solid) if (~solid).any() else np.full(solid.shape, np.inf)
        values = np.where(solid, -(d_solid - 0.5), d_free - 0.5) * r
        if walls:
            values = values[1:-1, 1:-1, :-1]
        values = values.astype(np.float32)
    return SignedDistanceField(bin_geometry, r, frozen(values), frozen(occ))


def query_sdf(field: SignedDistanceField, points: np.ndarray, *, outside: float = np.nan) -> np.ndarray:
    """Trilinear SDF at camera-frame points (N, 3); `outside` where a point leaves the grid."""
    if not isinstance(field, SignedDistanceField):
        raise PerceptionError(f"field must be a SignedDistanceField, got {type(field).__name__}")
    b = field.bin.to_bin(points)
    if b.shape[0] == 0:
        return np.zeros(0, dtype=np.float64)
    r = field.resolution
    n = np.array(field.values.shape, dtype=np.float64)
    inside = np.all((b >= 0) & (b <= n * r), axis=1)
    coords = (b / r - 0.5).T  # voxel-index coordinates; clamp to centres at the grid's outer half voxel
    out = ndimage.map_coordinates(field.values.astype(np.float64), coords, order=1, mode="nearest")
    out[~inside] = outside
    return out
