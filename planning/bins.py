"""Bin choice for a stow: which bin, and where in it.

Each bin is described by its front-face occupancy image (conventions as in :mod:`planning.placement`: row 0 is
the floor, rows grow upwards), its cell size, its inner dimensions and a free-depth map (mm of free depth from
the front face, per cell). The item fits at a placement when its footprint is free and supported on the face
and every cell under the footprint has free depth >= the item's depth.

Ranking of feasible bins (lower ``rank_cost`` is better, ties by input order)::

    rank_cost = best.y_mm / bin.height_mm + 0.25 * (1 - fill_fraction) + 0.25 * fragmentation

* the best placement's height as a fraction of the bin's height (lowest first);
* ``fill_fraction``: occupied fraction of the face; fuller bins are preferred (best fit), keeping emptier
  bins for large items;
* ``fragmentation`` = 1 - (largest free rectangle area / total free area), in [0, 1]; 0 = one free block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from planning.checks import real
from planning.placement import (
    Placement,
    PlacementReason,
    PlacementResult,
    PlanningError,
    _check_free_depth,
    _check_occupancy,
    find_placements,
)

__all__ = [
    "BinChoice",
    "BinEvaluation",
    "BinReason",
    "BinState",
    "ItemDims",
    "choose_bin",
    "fragmentation",
]


class BinReason(StrEnum):
    OK = "ok"
    TOO_SMALL = "too_small"  # item larger than the bin in some dimension (in every allowed orientation)
    FRAGMENTED = "fragmented"  # enough free space that a sideways sweep could consolidate
    NO_CONTIGUOUS_SPACE = "no_contiguous_space"
    INSUFFICIENT_FREE_AREA = "insufficient_free_area"
    INSUFFICIENT_DEPTH = "insufficient_depth"
    UNSUPPORTED = "unsupported"


_FROM_PLACEMENT = {
    PlacementReason.OK: BinReason.OK,
    PlacementReason.TOO_SMALL: BinReason.TOO_SMALL,
    PlacementReason.FRAGMENTED: BinReason.FRAGMENTED,
    PlacementReason.NO_CONTIGUOUS_SPACE: BinReason.NO_CONTIGUOUS_SPACE,
    PlacementReason.INSUFFICIENT_FREE_AREA: BinReason.INSUFFICIENT_FREE_AREA,
    PlacementReason.INSUFFICIENT_DEPTH: BinReason.INSUFFICIENT_DEPTH,
    PlacementReason.UNSUPPORTED: BinReason.UNSUPPORTED,
}


@dataclass(frozen=True, slots=True)
class ItemDims:
    """Item box in mm: width and height as seen on the bin's front face, depth into the bin."""

    width_mm: float
    height_mm: float
    depth_mm: float

    def __post_init__(self) -> None:
        for name in ("width_mm", "height_mm", "depth_mm"):
            real(name, getattr(self, name))


@dataclass(frozen=True, slots=True, eq=False)
class BinState:
    """One bin's current state. ``occupancy`` (bool) and ``free_depth_mm`` (real) are (rows, cols)."""

    bin_id: str
    occupancy: np.ndarray
    free_depth_mm: np.ndarray
    cell_mm: float
    width_mm: float
    height_mm: float
    depth_mm: float

    def __post_init__(self) -> None:
        if not isinstance(self.bin_id, str) or not self.bin_id:
            raise PlanningError(f"bin_id must be a non-empty str, got {self.bin_id!r}")
        occ = _check_occupancy(self.occupancy)
        _check_free_depth(self.free_depth_mm, occ.shape)
        cell = real(f"{self.bin_id}: cell_mm", self.cell_mm)
        for name in ("width_mm", "height_mm", "depth_mm"):
            real(f"{self.bin_id}: {name}", getattr(self, name))
        rows, cols = occ.shape
        # The image must cover the face to within one cell (partial edge cells are allowed).
        if not (math.ceil(self.width_mm / cell - 1e-9) == cols and math.ceil(self.height_mm / cell - 1e-9) == rows):
            raise PlanningError(
                f"{self.bin_id}: occupancy {rows}x{cols} cells at {cell} mm does not match face "
                f"{self.width_mm}x{self.height_mm} mm (expected {math.ceil(self.height_mm / cell - 1e-9)}x"
                f"{math.ceil(self.width_mm / cell - 1e-9)})"
            )
        if np.any(self.free_depth_mm > self.depth_mm + 1e-6):
            raise PlanningError(f"{self.bin_id}: free_depth_mm exceeds bin depth {self.depth_mm} mm")


@dataclass(frozen=True, slots=True)
class BinEvaluation:
    bin_id: str
    reason: BinReason
    detail: str
    placements: PlacementResult | None
    fill_fraction: float
    fragmentation: float
    rank_cost: float  # inf when infeasible

    @property
    def feasible(self) -> bool:
        return self.reason is BinReason.OK

    @property
    def best(self) -> Placement | None:
        return self.placements.best if self.placements is not None else None


@dataclass(frozen=True, slots=True)
class BinChoice:
    """``ranked``: feasible bins, best first. ``rejected``: infeasible bins, in input order, with reasons."""

    ranked: tuple[BinEvaluation, ...]
    rejected: tuple[BinEvaluation, ...]

    @property
    def best(self) -> BinEvaluation | None:
        return self.ranked[0] if self.ranked else None

    @property
    def any_fragmented(self) -> bool:
        """True when some bin was rejected only because its free space is fragmented (a sweep candidate)."""
        return any(e.reason is BinReason.FRAGMENTED for e in self.rejected)


def _largest_free_rectangle(free: np.ndarray) -> int:
    """Area (cells) of the largest all-True axis-aligned rectangle (histogram method, O(rows*cols))."""
    heights = np.zeros(free.shape[1], dtype=np.int64)
    best = 0
    for row in free:
        heights = np.where(row, heights + 1, 0)
        stack: list[int] = []
        h = [*heights.tolist(), 0]
        for i, hi in enumerate(h):
            while stack and h[stack[-1]] >= hi:
                top = stack.pop()
                left = stack[-1] + 1 if stack else 0
                best = max(best, h[top] * (i - left))
            stack.append(i)
    return best


def fragmentation(occupancy: np.ndarray) -> float:
    """1 - largest free rectangle / total free area, in [0, 1]; 0 for a full or a single-block free space."""
    occ = _check_occupancy(occupancy)
    free = ~occ
    total = int(free.sum())
    if total == 0:
        return 0.0
    return 1.0 - _largest_free_rectangle(free) / total


def choose_bin(
    bins: Sequence[BinState],
    item: ItemDims,
    *,
    allow_rotation: bool = True,
    min_support_fraction: float = 0.5,
    max_placements_per_bin: int | None = 32,
) -> BinChoice:
    """Evaluate every bin for ``item`` and rank the feasible ones (see module doc)."""
    if isinstance(bins, BinState) or not isinstance(bins, Sequence):
        raise PlanningError(f"bins must be a sequence of BinState, got {type(bins).__name__}")
    if len(bins) == 0:
        raise PlanningError("bins is empty")
    for b in bins:
        if not isinstance(b, BinState):
            raise PlanningError(f"bins must contain BinState, got {type(b).__name__}")
    ids = [b.bin_id for b in bins]
    if len(set(ids)) != len(ids):
        raise PlanningError(f"duplicate bin ids: {ids}")
    if not isinstance(item, ItemDims):
        raise PlanningError(f"item must be ItemDims, got {type(item).__name__}")

    evaluations: list[tuple[int, BinEvaluation]] = []
    for i, b in enumerate(bins):
        fill = float(b.occupancy.mean())
        frag = fragmentation(b.occupancy)
        face_fits = (item.width_mm <= b.width_mm + 1e-9 and item.height_mm <= b.height_mm + 1e-9) or (
            allow_rotation and item.height_mm <= b.width_mm + 1e-9 and item.width_mm <= b.height_mm + 1e-9
        )
        if item.depth_mm > b.depth_mm + 1e-9 or not face_fits:
            detail = (
                f"item {item.width_mm}x{item.height_mm}x{item.depth_mm} mm does not fit bin "
                f"{b.width_mm}x{b.height_mm}x{b.depth_mm} mm"
            )
            evaluations.append((i, BinEvaluation(b.bin_id, BinReason.TOO_SMALL, detail, None, fill, frag, math.inf)))
            continue
        res = find_placements(
            b.occupancy,
            b.cell_mm,
            item.width_mm,
            item.height_mm,
            allow_rotation=allow_rotation,
            min_support_fraction=min_support_fraction,
            free_depth_mm=b.free_depth_mm,
            depth_mm=item.depth_mm,
            max_results=max_placements_per_bin,
        )
        reason = _FROM_PLACEMENT[res.reason]
        if res.ok:
            assert res.best is not None
            cost = res.best.y_mm / b.height_mm + 0.25 * (1.0 - fill) + 0.25 * frag
        else:
            cost = math.inf
        evaluations.append((i, BinEvaluation(b.bin_id, reason, res.detail, res, fill, frag, cost)))

    feasible = sorted((e for e in evaluations if e[1].feasible), key=lambda e: (e[1].rank_cost, e[0]))
    rejected = [e for e in evaluations if not e[1].feasible]
    return BinChoice(tuple(e for _, e in feasible), tuple(e for _, e in rejected))
