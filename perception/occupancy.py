"""Per-bin front-face maps: free depth from the opening, occupancy at a depth, free rectangles.

Bin frame (the camera looks straight into the bin): the origin is the bottom-left corner of
the opening, given in camera coordinates; bin x = camera x - origin x (right), bin y =
origin y - camera y (up), bin z = camera z - origin z (into the bin). The bin interior is
[0, width] x [0, height] x [0, depth].

Grids are indexed [iy, ix] with cell (iy, ix) covering bin x in [ix r, (ix + 1) r) and bin y in
[iy r, (iy + 1) r): row 0 is the BOTTOM of the opening (flip with np.flipud to display).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .common import PerceptionError, check_points, check_positive, check_vec3, frozen


@dataclass(frozen=True, slots=True, eq=False)
class BinGeometry:
    """A bin as a box in the camera frame: `origin` = bottom-left corner of the opening (m)."""

    origin: tuple[float, float, float]
    width: float  # along bin x (camera x)
    height: float  # along bin y (camera -y)
    depth: float  # along bin z (camera z)

    def __post_init__(self) -> None:
        check_vec3(self.origin, "bin origin")
        for name in ("width", "height", "depth"):
            check_positive(getattr(self, name), f"bin {name}")

    @property
    def size(self) -> np.ndarray:
        return np.array([self.width, self.height, self.depth], dtype=np.float64)

    def to_bin(self, points_cam: np.ndarray) -> np.ndarray:
        """Camera-frame (N, 3) points -> bin-frame points."""
        p = check_points(points_cam)
        o = np.asarray(self.origin, dtype=np.float64)
        out = p - o
        out[:, 1] = -out[:, 1]
        return out

    def to_camera(self, points_bin: np.ndarray) -> np.ndarray:
        """Bin-frame (N, 3) points -> camera-frame points."""
        p = check_points(points_bin).copy()
        p[:, 1] = -p[:, 1]
        return p + np.asarray(self.origin, dtype=np.float64)


def grid_shape(bin_geometry: BinGeometry, resolution: float) -> tuple[int, int]:
    """(ny, nx) cells covering the opening at `resolution` (the last cell may overhang)."""
    r = check_positive(resolution, "resolution")
    nx = max(1, math.ceil(bin_geometry.width / r - 1e-9))
    ny = max(1, math.ceil(bin_geometry.height / r - 1e-9))
    if nx * ny > 10_000_000:
        raise PerceptionError(f"resolution {r} m gives a {ny}x{nx} grid; too fine for this bin")
    return ny, nx


@dataclass(frozen=True, slots=True, eq=False)
class FrontFaceMap:
    """Free depth from the opening per cell (m, in [0, bin depth]) and which cells saw a point."""

    bin: BinGeometry
    resolution: float
    free_depth: np.ndarray  # (ny, nx) float32
    observed: np.ndarray  # (ny, nx) bool
    counts: np.ndarray  # (ny, nx) int32, points per cell (including those at/behind the back)

    def occupied(self, required_depth: float) -> np.ndarray:
        """Bool (ny, nx): True where less than `required_depth` is free from the opening."""
        d = check_positive(required_depth, "required_depth", allow_zero=True)
        return self.free_depth < d

    def free(self, required_depth: float) -> np.ndarray:
        """Bool (ny, nx): the free region at `required_depth` (complement of `occupied`)."""
        return ~self.occupied(required_depth)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin-frame x (nx,) and y (ny,) of the cell centres."""
        ny, nx = self.free_depth.shape
        return (np.arange(nx) + 0.5) * self.resolution, (np.arange(ny) + 0.5) * self.resolution


def front_face_map(
    points: np.ndarray,
    bin_geometry: BinGeometry,
    *,
    resolution: float = 0.005,
    unobserved_free: bool = False,
    structure_margin: float | None = None,
) -> FrontFaceMap:
    """Free depth per cell over the opening from camera-frame points.

    A cell's free depth is the bin-z of its nearest point, clipped to [0, bin depth]: points
    in front of the opening (z < 0, e.g. an item sticking out) give 0, points at or behind the
    back give the full depth. Cells with no point are `observed = False` and get free depth 0
    (conservative) unless `unobserved_free`, which gives them the full depth.

    Points within `structure_margin` (default: one cell) of the floor, ceiling or side walls
    are the bin itself, not its contents: they only show that the cell is free at least as
    deep as the farthest of them, and never make it an obstacle.
    """
    if not isinstance(bin_geometry, BinGeometry):
        raise PerceptionError(f"bin_geometry must be a BinGeometry, got {type(bin_geometry).__name__}")
    ny, nx = grid_shape(bin_geometry, resolution)
    r = float(resolution)
    b = bin_geometry.to_bin(points)
    inside = (b[:, 0] >= 0) & (b[:, 0] < bin_geometry.width) & (b[:, 1] >= 0) & (b[:, 1] < bin_geometry.height)
    b = b[inside]
    margin = r if structure_margin is None else float(structure_margin)
    if not (np.isfinite(margin) and margin >= 0):
        raise PerceptionError(f"structure_margin must be a finite length >= 0, got {structure_margin!r}")
    w, h = bin_geometry.width, bin_geometry.height
    structure = (b[:, 0] < margin) | (b[:, 0] > w - margin) | (b[:, 1] < margin) | (b[:, 1] > h - margin)
    ix = np.minimum((b[:, 0] / r).astype(np.int64), nx - 1)
    iy = np.minimum((b[:, 1] / r).astype(np.int64), ny - 1)
    flat = iy * nx + ix
    z = np.clip(b[:, 2], 0.0, bin_geometry.depth)
    counts = np.bincount(flat, minlength=ny * nx).astype(np.int32)
    contents = ~structure
    hit = np.bincount(flat[contents], minlength=ny * nx) > 0
    free = np.full(ny * nx, bin_geometry.depth, dtype=np.float64)
    np.minimum.at(free, flat[contents], z[contents])
    seen = np.zeros(ny * nx, dtype=np.float64)  # how deep the bin's own surfaces show the cell free
    np.maximum.at(seen, flat[structure], z[structure])
    only_structure = ~hit & (counts > 0)
    free[only_structure] = seen[only_structure]
    observed = counts > 0
    if not unobserved_free:
        free[~observed] = 0.0
    return FrontFaceMap(
        bin_geometry,
        r,
        frozen(free.reshape(ny, nx).astype(np.float32)),
        frozen(observed.reshape(ny, nx)),
        frozen(counts.reshape(ny, nx)),
    )


def fill_unobserved(fmap: FrontFaceMap, max_gap: int = 3) -> FrontFaceMap:
    """Unobserved cells (a band in front, a missing return) take the least free depth of the nearest observed cells
    within `max_gap` cells: those above and below where there are both (a strip across the bin, as the band hides:
    what it hides continues what shows above and below it, not what stands beside it in the strip's row), else
    those in each of the four grid directions; farther from any, they stay at 0 (occupied).

    The taking of the least keeps it conservative: an occluded strip is no freer than what borders it.
    """
    if max_gap < 0:
        raise PerceptionError(f"max_gap must be >= 0, got {max_gap}")
    free, seen = fmap.free_depth.astype(np.float64), fmap.observed
    nearest: list[np.ndarray] = []  # per direction (down, up, left, right): the nearest observed value, inf none
    for axis in (0, 1):
        for step in (1, -1):
            value, have = free.copy(), seen.copy()
            for _ in range(max_gap):
                shifted_v, shifted_h = np.roll(value, step, axis), np.roll(have, step, axis)
                edge = [slice(None)] * 2
                edge[axis] = slice(0, 1) if step == 1 else slice(-1, None)
                shifted_h[tuple(edge)] = False  # no wrap-around across the bin
                take = ~have & shifted_h
                value[take], have = shifted_v[take], have | shifted_h
            nearest.append(np.where(have & ~seen, value, np.inf))
    vertical = np.minimum(nearest[0], nearest[1])
    both = np.isfinite(nearest[0]) & np.isfinite(nearest[1])
    fill = np.where(both, vertical, np.minimum(vertical, np.minimum(nearest[2], nearest[3])))
    out = np.where(seen, free, 0.0)
    gap = ~seen & np.isfinite(fill)
    out[gap] = fill[gap]
    return FrontFaceMap(fmap.bin, fmap.resolution, frozen(out.astype(np.float32)), fmap.observed, fmap.counts)


@dataclass(frozen=True, slots=True)
class FreeBox:
    """An axis-aligned free rectangle of the opening (bin frame, m) and the depth free behind it."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    free_depth: float  # the smallest free depth over its cells (>= the required depth)
    cells: tuple[int, int, int, int]  # iy0, iy1, ix0, ix1 (half-open) in the map grid

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        return self.y_max - self.y_min

    @property
    def area(self) -> float:
        return self.width * self.height


def largest_rectangle(mask: np.ndarray, *, min_rows: int = 1, min_cols: int = 1) -> tuple[int, int, int, int] | None:
    """Largest all-True rectangle of a 2-D bool mask, at least min_rows x min_cols, as (r0, r1, c0, c1).

    None if there is none. Row-by-row histogram method, O(rows x cols).
    """
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
        raise PerceptionError(f"mask must be a 2-D bool array, got {getattr(mask, 'dtype', type(mask))}")
    min_rows, min_cols = max(1, int(min_rows)), max(1, int(min_cols))
    rows, cols = mask.shape
    heights = np.zeros(cols + 1, dtype=np.int64)  # sentinel 0 at the end flushes the stack
    best, best_rect = 0, None
    for r in range(rows):
        heights[:cols] = np.where(mask[r], heights[:cols] + 1, 0)
        if not heights.any():
            continue
        h = heights.tolist()
        stack: list[int] = []
        for c in range(cols + 1):
            while stack and h[stack[-1]] >= h[c]:
                top = stack.pop()
                height = h[top]
                left = stack[-1] + 1 if stack else 0
                area = height * (c - left)
                if area > best and height >= min_rows and c - left >= min_cols:
                    best, best_rect = area, (r - height + 1, r + 1, left, c)
            stack.append(c)
    return best_rect


def _grow(mask: np.ndarray, rect: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """Extend a free rectangle side by side until it is maximal in `mask`."""
    r0, r1, c0, c1 = rect
    rows, cols = mask.shape
    changed = True
    while changed:
        changed = False
        if r0 > 0 and mask[r0 - 1, c0:c1].all():
            r0, changed = r0 - 1, True
        if r1 < rows and mask[r1, c0:c1].all():
            r1, changed = r1 + 1, True
        if c0 > 0 and mask[r0:r1, c0 - 1].all():
            c0, changed = c0 - 1, True
        if c1 < cols and mask[r0:r1, c1].all():
            c1, changed = c1 + 1, True
    return r0, r1, c0, c1


def free_space_boxes(
    fmap: FrontFaceMap,
    required_depth: float,
    *,
    min_width: float = 0.0,
    min_height: float = 0.0,
    max_boxes: int = 8,
) -> list[FreeBox]:
    """Maximal free rectangles of the opening with at least `required_depth` free behind them.

    Greedy: take the largest free rectangle of the not-yet-covered free cells, then grow it to
    be maximal in the whole free region (so boxes may overlap), repeat. The first box is the
    largest free rectangle. Boxes narrower than `min_width` or lower than `min_height` (m) are
    dropped. Sorted by area, largest first; an occupied opening gives [].
    """
    if not isinstance(fmap, FrontFaceMap):
        raise PerceptionError(f"fmap must be a FrontFaceMap, got {type(fmap).__name__}")
    min_w = check_positive(min_width, "min_width", allow_zero=True)
    min_h = check_positive(min_height, "min_height", allow_zero=True)
    if isinstance(max_boxes, bool) or not isinstance(max_boxes, int) or max_boxes < 1:
        raise PerceptionError(f"max_boxes must be a positive integer, got {max_boxes!r}")
    free = fmap.free(required_depth)
    r = fmap.resolution
    geom = fmap.bin
    remaining = free.copy()
    found: list[tuple[int, int, int, int]] = []
    min_cols = max(1, math.ceil(min_w / r - 1e-9))
    min_rows = max(1, math.ceil(min_h / r - 1e-9))
    while len(found) < max_boxes:
        rect = largest_rectangle(remaining, min_rows=min_rows, min_cols=min_cols)
        if rect is None:
            break
        r0, r1, c0, c1 = rect
        remaining[r0:r1, c0:c1] = False
        grown = _grow(free, rect)
        if grown not in found:
            found.append(grown)
    boxes = [
        FreeBox(
            x_min=c0 * r,
            x_max=min(c1 * r, geom.width),
            y_min=r0 * r,
            y_max=min(r1 * r, geom.height),
            free_depth=float(fmap.free_depth[r0:r1, c0:c1].min()),
            cells=(r0, r1, c0, c1),
        )
        for r0, r1, c0, c1 in found
    ]
    boxes.sort(key=lambda bx: -bx.area)
    return boxes
