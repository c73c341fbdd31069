"""Ray casting of axis-aligned boxes that keeps what a camera model needs: which box and face each pixel sees.

`cast(boxes, k)` gives, per pixel, the depth z (the same value as `camera.render`, with its tie rule: the first box
in the list wins an exact tie), the index of the box hit (-1: none), the face hit (FACE_* codes, the outward
normal), the hit's coordinates on that face (metres from the face's min corner, so a texture sticks to the box
whichever way the camera looks), the cosine between the ray and the face normal, and the number of pixels each
box would cover if it were alone in the scene (for visible fractions).

Camera frame: x right, y down, z forward (metres); pixel centres at integers (OpenCV).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..camera import Intrinsics
from .camera import Box, _footprint

# Face codes: the outward normal of the face hit.
FACE_NX, FACE_PX, FACE_NY, FACE_PY, FACE_NZ, FACE_PZ = range(6)
NORMALS = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64)
# Face axis -> the two box axes that span it (texture s, t): x faces (z, y), y faces (x, z), z faces (x, y).
FACE_AXES = np.array([[2, 1], [0, 2], [0, 1]], dtype=np.intp)


@dataclass(frozen=True, slots=True, eq=False)
class Surfaces:
    """What each pixel's ray hits first. Arrays are (H, W) unless said otherwise."""

    depth: np.ndarray  # float64 z in metres, inf where nothing is hit
    box: np.ndarray  # int32 index into the boxes cast, -1 where nothing is hit
    face: np.ndarray  # int8 FACE_* code, -1 where nothing is hit
    s: np.ndarray  # float32 texture coordinates on the face hit (m from the face's min corner), 0 where no hit
    t: np.ndarray
    face_w: np.ndarray  # float32 the face's extent along s and t (m), 0 where no hit
    face_h: np.ndarray
    cos_incidence: np.ndarray  # float32 |normal . ray direction| in [0, 1], 0 where no hit
    footprint_px: np.ndarray  # int64 (N,): pixels each box covers when alone
    windows: list[tuple[slice, slice] | None]  # per box: the rows and columns it can cover (None: none)

    @property
    def hit(self) -> np.ndarray:
        return self.box >= 0

    def normals(self) -> np.ndarray:
        """(H, W, 3) outward unit normals of the faces hit (0 where nothing is hit)."""
        out = NORMALS[np.maximum(self.face, 0)]
        out[self.face < 0] = 0.0
        return out


def rays(k: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Per-column x/z and per-row y/z of the pixel rays (u, v) -> (x, y, 1) * z."""
    u = (np.arange(k.width, dtype=np.float64) - k.cx) / k.fx
    v = (np.arange(k.height, dtype=np.float64) - k.cy) / k.fy
    return u, v


def cast(boxes: list[Box], k: Intrinsics) -> Surfaces:
    """Cast one ray per pixel through `boxes` (see the module docstring)."""
    u, v = rays(k)
    shape = (k.height, k.width)
    depth = np.full(shape, np.inf)
    index = np.full(shape, -1, dtype=np.int32)
    face = np.full(shape, -1, dtype=np.int8)
    footprint = np.zeros(len(boxes), dtype=np.int64)
    windows: list[tuple[slice, slice] | None] = [None] * len(boxes)
    los = np.zeros((max(len(boxes), 1), 3))
    sizes = np.zeros((max(len(boxes), 1), 3))
    for i, box in enumerate(boxes):
        lo, hi = box.bounds()
        los[i], sizes[i] = lo, hi - lo
        if hi[2] <= 0:
            continue
        rows, cols = _footprint(lo, hi, k)
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        dx = u[cols][None, :]
        dy = v[rows][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            tx1, tx2 = lo[0] / dx, hi[0] / dx
            ty1, ty2 = lo[1] / dy, hi[1] / dy
        nx, ny = np.minimum(tx1, tx2), np.minimum(ty1, ty2)
        tnear = np.maximum(np.maximum(nx, ny), lo[2])
        tfar = np.minimum(np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2)), hi[2])
        if np.isnan(nx).any() or np.isnan(ny).any():  # a ray in a slab's boundary plane (render's rule)
            tnear = np.where(np.isnan(tnear), lo[2], tnear)
        hit = (tnear <= tfar) & (tfar > 0)
        t = np.where(hit, np.maximum(tnear, 0.0), np.inf)
        footprint[i] = int(np.count_nonzero(hit))
        view = depth[rows, cols]
        closer = t < view
        if not closer.any():
            continue
        windows[i] = (rows, cols)
        # The face entered: the slab whose entry distance is the ray's entry distance (z last, as render does).
        c_near = tnear[closer]
        on_x = c_near == np.broadcast_to(nx, closer.shape)[closer]
        on_y = ~on_x & (c_near == np.broadcast_to(ny, closer.shape)[closer])
        code = np.full(c_near.shape, FACE_NZ, dtype=np.int8)
        code[on_y] = FACE_NY + (np.broadcast_to(dy, closer.shape)[closer][on_y] < 0)
        code[on_x] = FACE_NX + (np.broadcast_to(dx, closer.shape)[closer][on_x] < 0)
        view[closer] = t[closer]
        index[rows, cols][closer] = i
        face[rows, cols][closer] = code
    return _surfaces(depth, index, face, los, sizes, footprint, windows, k)


@lru_cache(maxsize=8)
def _ray_tables(k: Intrinsics) -> tuple[np.ndarray, ...]:
    """float32 (H, W) tables: x/z, y/z, and the cosines of each ray with the z, x and y axes."""
    u, v = rays(k)
    uu, vv = np.meshgrid(u, v)
    inv = 1.0 / np.sqrt(uu * uu + vv * vv + 1.0)
    out = tuple(a.astype(np.float32) for a in (uu, vv, inv, np.abs(uu) * inv, np.abs(vv) * inv))
    for a in out:
        a.flags.writeable = False
    return out


def _surfaces(depth: np.ndarray, index: np.ndarray, face: np.ndarray, los: np.ndarray, sizes: np.ndarray,
              footprint: np.ndarray, windows: list[tuple[slice, slice] | None], k: Intrinsics) -> Surfaces:
    # Arithmetic over the window the boxes hit, with small per-(box, face axis) tables, float32.
    shape = depth.shape
    s, t, fw, fh, cos = (np.zeros(shape, dtype=np.float32) for _ in range(5))
    wins = [w for w in windows if w is not None]
    if wins:
        r0, r1 = min(r.start for r, _ in wins), max(r.stop for r, _ in wins)
        c0, c1 = min(c.start for _, c in wins), max(c.stop for _, c in wins)
        win = (slice(r0, r1), slice(c0, c1))
        uu, vv, inv, cos_x, cos_y = (a[win] for a in _ray_tables(k))
        box, axis = index[win], face[win] >> 1  # -1 where nothing is hit
        hit = box >= 0
        n = los.shape[0]
        # Table rows: (box + 1) * 3 + axis; index -1 (nothing hit) reads the zero at the end.
        tables = np.zeros((4, 3 * (n + 1) + 1), dtype=np.float32)
        for a in range(3):
            sa, ta = FACE_AXES[a]
            tables[0, 3 + a:3 * (n + 1):3], tables[1, 3 + a:3 * (n + 1):3] = los[:, sa], los[:, ta]
            tables[2, 3 + a:3 * (n + 1):3], tables[3, 3 + a:3 * (n + 1):3] = sizes[:, sa], sizes[:, ta]
        key = np.where(hit, (box.astype(np.intp) + 1) * 3 + axis, -1)
        z = depth[win].astype(np.float32)
        z[~hit] = 0.0
        ss, tt = uu * z, vv * z
        on_x, on_y = axis == 0, axis == 1
        np.copyto(ss, z, where=on_x)
        np.copyto(tt, z, where=on_y)
        s[win], t[win] = ss - tables[0][key], tt - tables[1][key]
        fw[win], fh[win] = tables[2][key], tables[3][key]
        c = inv.copy()
        np.copyto(c, cos_x, where=on_x)
        np.copyto(c, cos_y, where=on_y)
        c[~hit] = 0.0
        cos[win] = c
    return Surfaces(depth, index, face, s, t, fw, fh, cos, footprint, windows)
