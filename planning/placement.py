"""Stow placement search on a bin's front-face occupancy image.

Conventions
-----------
* ``occupancy[row, col]`` is a boolean image of the bin's front face. **Row 0 is the floor** and rows grow
  *upwards*; columns grow from the left wall (col 0) to the right wall. A cell is ``True`` when any part of it
  is occupied (conservative).
* All cells are square, ``cell_mm`` on a side. A placement's ``(x_mm, y_mm)`` is its lower-left corner
  (``x = col * cell_mm`` from the left wall, ``y = row * cell_mm`` above the floor).
* An item of ``width_mm x height_mm`` covers ``ceil(width/cell) x ceil(height/cell)`` cells (conservative).

Search
------
A summed-area table (integer, exact) gives the occupied-cell count under every footprint window in
O(rows*cols) independent of the footprint size. It is faster than ``scipy.signal.fftconvolve`` on
bin-sized images (about 90x60 cells; see the report / ``planning`` timings) and has no float round-off.

Support rule: the footprint's bottom row is row 0 (floor), or the row directly below it is occupied across
at least ``min_support_fraction`` of the footprint's width.

Score (lower is better), in units of cell rows::

    score = row + 0.5 * (1 - side_contact) + 0.25 * gap / n_cols

* ``row``: height of the placement above the floor in cells (lowest first dominates: the two other terms
  add < 1 row).
* ``side_contact`` in [0, 1]: the larger of the left/right side contact fractions; a side against a wall
  counts 1, otherwise the fraction of the footprint's height that has blocked cells (occupied, or too
  shallow for the item) directly beside it.
* ``gap``: free columns between the footprint and the nearest wall or occupied column in the footprint's row
  band (on the nearer side), so that free space stays contiguous.

Ties are broken by (row, col, unrotated-first), so the result is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .checks import PlanningError, real

__all__ = [
    "Placement",
    "PlacementReason",
    "PlacementResult",
    "PlanningError",
    "find_placements",
    "footprint_cells",
]

_EPS = 1e-9


class PlacementReason(StrEnum):
    """Why a search produced (or did not produce) placements."""

    OK = "ok"
    TOO_SMALL = "too_small"  # footprint larger than the bin face in every allowed orientation
    FRAGMENTED = "fragmented"  # enough fully free columns in some row band, but not contiguous: a sweep may fix it
    NO_CONTIGUOUS_SPACE = "no_contiguous_space"  # enough total free area, but not in a shape a sideways sweep fixes
    INSUFFICIENT_FREE_AREA = "insufficient_free_area"  # less free area than the footprint
    INSUFFICIENT_DEPTH = "insufficient_depth"  # free spots on the face, but not deep enough behind
    UNSUPPORTED = "unsupported"  # free spots exist, but none rests on the floor or on enough occupied cells


# When no orientation works, report the most actionable reason.
_REASON_PRIORITY = (
    PlacementReason.FRAGMENTED,
    PlacementReason.UNSUPPORTED,
    PlacementReason.INSUFFICIENT_DEPTH,
    PlacementReason.NO_CONTIGUOUS_SPACE,
    PlacementReason.INSUFFICIENT_FREE_AREA,
    PlacementReason.TOO_SMALL,
)


@dataclass(frozen=True, slots=True)
class Placement:
    """Lower-left corner (mm from left wall, mm above floor) and the footprint placed there."""

    x_mm: float
    y_mm: float
    width_mm: float
    height_mm: float
    score: float
    rotated: bool = False


@dataclass(frozen=True, slots=True)
class PlacementResult:
    """Ranked placements (best first) and why; ``placements`` is empty iff ``reason`` is not ``OK``."""

    placements: tuple[Placement, ...]
    reason: PlacementReason
    detail: str = ""
    free_area_mm2: float = 0.0

    @property
    def ok(self) -> bool:
        return self.reason is PlacementReason.OK

    @property
    def best(self) -> Placement | None:
        return self.placements[0] if self.placements else None


# ----------------------------------------------------------------------------------------------- validation


def _check_occupancy(occupancy: object) -> np.ndarray:
    if not isinstance(occupancy, np.ndarray):
        raise PlanningError(f"occupancy must be a numpy array, got {type(occupancy).__name__}")
    if occupancy.ndim != 2:
        raise PlanningError(f"occupancy must be 2-D (rows, cols), got shape {occupancy.shape}")
    if occupancy.size == 0:
        raise PlanningError(f"occupancy is empty, shape {occupancy.shape}")
    if occupancy.dtype != np.bool_:
        raise PlanningError(f"occupancy must have dtype bool, got {occupancy.dtype}")
    return occupancy


def _check_free_depth(free_depth_mm: object, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(free_depth_mm, np.ndarray):
        raise PlanningError(f"free_depth_mm must be a numpy array, got {type(free_depth_mm).__name__}")
    if free_depth_mm.shape != shape:
        raise PlanningError(f"free_depth_mm shape {free_depth_mm.shape} != occupancy shape {shape}")
    if not np.issubdtype(free_depth_mm.dtype, np.floating) and not np.issubdtype(free_depth_mm.dtype, np.integer):
        raise PlanningError(f"free_depth_mm must be a real array, got dtype {free_depth_mm.dtype}")
    if free_depth_mm.dtype == np.bool_:
        raise PlanningError("free_depth_mm must be a real array, got dtype bool")
    if not np.all(np.isfinite(free_depth_mm)):
        raise PlanningError("free_depth_mm contains NaN or inf")
    if np.any(free_depth_mm < 0):
        raise PlanningError("free_depth_mm contains negative depths")
    return free_depth_mm


def footprint_cells(width_mm: float, height_mm: float, cell_mm: float) -> tuple[int, int]:
    """(cols, rows) covered by a footprint, rounding partial cells up (tolerant to float noise)."""
    w = real("width_mm", width_mm)
    h = real("height_mm", height_mm)
    c = real("cell_mm", cell_mm)
    return max(1, math.ceil(w / c - _EPS)), max(1, math.ceil(h / c - _EPS))


# ----------------------------------------------------------------------------------------------- core


def _sat(a: np.ndarray) -> np.ndarray:
    s = np.zeros((a.shape[0] + 1, a.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(a, axis=0, dtype=np.int64), axis=1, out=s[1:, 1:])
    return s


def _window_sums(s: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """Sum of the source image over every kh x kw window; result [r, c] is the window with lower-left (r, c)."""
    return s[kh:, kw:] - s[:-kh, kw:] - s[kh:, :-kw] + s[:-kh, :-kw]


@dataclass(frozen=True, slots=True)
class _OrientationOutcome:
    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray
    reason: PlacementReason
    detail: str


def _search_orientation(
    occ: np.ndarray,
    blocked: np.ndarray,
    kw: int,
    kh: int,
    min_support_fraction: float,
) -> _OrientationOutcome:
    n_rows, n_cols = occ.shape
    empty = np.zeros(0, dtype=np.int64)
    if kw > n_cols or kh > n_rows:
        return _OrientationOutcome(
            empty,
            empty,
            np.zeros(0),
            PlacementReason.TOO_SMALL,
            f"footprint {kw}x{kh} cells exceeds bin face {n_cols}x{n_rows} cells",
        )
    occ_i = occ.astype(np.int64)
    free_blk = _window_sums(_sat(blocked), kh, kw) == 0  # (n_rows-kh+1, n_cols-kw+1)

    # Support: floor, or the row below is occupied across >= fraction of the footprint width.
    row_cum = np.zeros((n_rows, n_cols + 1), dtype=np.int64)
    np.cumsum(occ_i, axis=1, out=row_cum[:, 1:])
    row_win = row_cum[:, kw:] - row_cum[:, :-kw]  # (n_rows, n_cols-kw+1): occupied count in each row segment
    supported = np.empty_like(free_blk)
    supported[0, :] = True
    supported[1:, :] = row_win[: free_blk.shape[0] - 1, :] >= min_support_fraction * kw - _EPS

    ok = free_blk & supported
    if not ok.any():
        return _no_placement_reason(occ, blocked, free_blk, kw, kh)

    rows, cols = np.nonzero(ok)

    # Side contact and gap to the nearest wall / blocked column within the footprint's row band (cells too
    # shallow for the item count as neighbours: something sits behind them).
    col_cum = np.zeros((n_rows + 1, n_cols), dtype=np.int64)
    np.cumsum(blocked, axis=0, dtype=np.int64, out=col_cum[1:, :])
    band = col_cum[kh:, :] - col_cum[:-kh, :]  # (n_rows-kh+1, n_cols): occupied cells in column c over kh rows
    b = band[rows]  # (n, n_cols)
    left = np.where(cols == 0, 1.0, b[np.arange(rows.size), np.maximum(cols - 1, 0)] / kh)
    right_idx = cols + kw
    right = np.where(right_idx >= n_cols, 1.0, b[np.arange(rows.size), np.minimum(right_idx, n_cols - 1)] / kh)
    side_contact = np.maximum(left, right)

    idx = np.arange(n_cols)
    band_any = band > 0
    last_obst = np.maximum.accumulate(np.where(band_any, idx, -1), axis=1)  # last obstacle col <= c
    next_obst = np.minimum.accumulate(np.where(band_any, idx, n_cols)[:, ::-1], axis=1)[:, ::-1]  # first >= c
    last_before = np.where(cols > 0, last_obst[rows, np.maximum(cols - 1, 0)], -1)
    gap_left = cols - last_before - 1
    next_after = np.where(right_idx < n_cols, next_obst[rows, np.minimum(right_idx, n_cols - 1)], n_cols)
    gap_right = next_after - right_idx
    gap = np.minimum(gap_left, gap_right)

    scores = rows + 0.5 * (1.0 - side_contact) + 0.25 * gap / n_cols
    return _OrientationOutcome(rows, cols, scores, PlacementReason.OK, "")


def _no_placement_reason(
    occ: np.ndarray, blocked: np.ndarray, free_blk: np.ndarray, kw: int, kh: int
) -> _OrientationOutcome:
    empty = np.zeros(0, dtype=np.int64)

    def out(reason: PlacementReason, detail: str) -> _OrientationOutcome:
        return _OrientationOutcome(empty, empty, np.zeros(0), reason, detail)

    if free_blk.any():
        return out(PlacementReason.UNSUPPORTED, f"{int(free_blk.sum())} free {kw}x{kh}-cell spots, none supported")
    if blocked is not occ and (_window_sums(_sat(occ), kh, kw) == 0).any():
        return out(PlacementReason.INSUFFICIENT_DEPTH, f"free {kw}x{kh}-cell spots on the face lack free depth")
    # Fragmentation: in some band of kh rows, the fully free columns would suffice if pushed together.
    col_cum = np.zeros((blocked.shape[0] + 1, blocked.shape[1]), dtype=np.int64)
    np.cumsum(blocked, axis=0, dtype=np.int64, out=col_cum[1:, :])
    free_cols = ((col_cum[kh:, :] - col_cum[:-kh, :]) == 0).sum(axis=1)
    best_band = int(free_cols.max())
    if best_band >= kw:
        return out(
            PlacementReason.FRAGMENTED,
            f"a {kh}-row band has {best_band} fully free columns (need {kw} contiguous); a sweep may consolidate",
        )
    free_cells = int(blocked.size - blocked.sum())
    if free_cells >= kw * kh:
        return out(PlacementReason.NO_CONTIGUOUS_SPACE, f"{free_cells} free cells >= {kw * kh} but no {kw}x{kh} spot")
    return out(PlacementReason.INSUFFICIENT_FREE_AREA, f"{free_cells} free cells < footprint {kw * kh} cells")


def find_placements(
    occupancy: np.ndarray,
    cell_mm: float,
    width_mm: float,
    height_mm: float,
    *,
    allow_rotation: bool = False,
    min_support_fraction: float = 0.5,
    free_depth_mm: np.ndarray | None = None,
    depth_mm: float | None = None,
    max_results: int | None = 32,
) -> PlacementResult:
    """Every collision-free, supported placement of a ``width_mm x height_mm`` footprint, best first.

    ``occupancy``: bool (rows, cols), row 0 = floor (see module doc). ``free_depth_mm`` (same shape, mm of free
    depth from the front) and ``depth_mm`` go together: cells with less free depth than ``depth_mm`` are
    treated as blocked (but do not count as support). ``allow_rotation`` also tries the footprint rotated 90°
    about the depth axis (width and height swapped). ``max_results=None`` returns all placements.
    """
    occ = _check_occupancy(occupancy)
    cell = real("cell_mm", cell_mm)
    kw, kh = footprint_cells(width_mm, height_mm, cell)
    w, h = float(width_mm), float(height_mm)
    if not isinstance(allow_rotation, bool):
        raise PlanningError(f"allow_rotation must be bool, got {type(allow_rotation).__name__}")
    frac = real("min_support_fraction", min_support_fraction)
    if frac > 1.0:
        raise PlanningError(f"min_support_fraction must be in (0, 1], got {min_support_fraction!r}")
    if max_results is not None and (
        isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1
    ):
        raise PlanningError(f"max_results must be a positive int or None, got {max_results!r}")
    if (free_depth_mm is None) != (depth_mm is None):
        raise PlanningError("free_depth_mm and depth_mm must be given together")
    blocked = occ
    if free_depth_mm is not None:
        fd = _check_free_depth(free_depth_mm, occ.shape)
        d = real("depth_mm", depth_mm)
        shallow = fd < d - _EPS
        if shallow.any():
            blocked = occ | shallow

    orientations: list[tuple[int, int, float, float, bool]] = [(kw, kh, w, h, False)]
    if allow_rotation and kw != kh:  # a square cell footprint rotated covers the same cells
        orientations.append((kh, kw, h, w, True))

    outcomes = [(o, _search_orientation(occ, blocked, o[0], o[1], frac)) for o in orientations]
    free_area = float(blocked.size - int(blocked.sum())) * cell * cell

    found = [(o, r) for o, r in outcomes if r.reason is PlacementReason.OK]
    if not found:
        reasons = {r.reason: r.detail for _, r in outcomes}
        for reason in _REASON_PRIORITY:
            if reason in reasons:
                return PlacementResult((), reason, reasons[reason], free_area)
        raise AssertionError("unreachable")  # pragma: no cover

    rows = np.concatenate([r.rows for _, r in found])
    cols = np.concatenate([r.cols for _, r in found])
    scores = np.concatenate([r.scores for _, r in found])
    rot = np.concatenate([np.full(r.rows.size, o[4]) for o, r in found])
    order = np.lexsort((rot, cols, rows, np.round(scores, 9)))
    if max_results is not None:
        order = order[:max_results]
    dims = {o[4]: (o[2], o[3]) for o, _ in found}
    placements = tuple(
        Placement(
            x_mm=float(cols[i]) * cell,
            y_mm=float(rows[i]) * cell,
            width_mm=dims[bool(rot[i])][0],
            height_mm=dims[bool(rot[i])][1],
            score=float(scores[i]),
            rotated=bool(rot[i]),
        )
        for i in order
    )
    return PlacementResult(placements, PlacementReason.OK, f"{rows.size} placements", free_area)
