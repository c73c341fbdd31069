"""Sweep affordances for a stow: where the blade enters, which way it pushes, how far, and the force it needs.

When a bin has enough free columns in some row band but not contiguously (``PlacementReason.FRAGMENTED``), the
stow tool's blade can enter a gap and push everything on one side of it towards a wall, merging the gaps. An
upright (tall, thin) item in the way can instead be tipped 90 degrees with the blade held horizontally.

Inputs: the bin's perceived front-face state (a :class:`planning.bins.BinState`: occupancy, free depth, cell
size, inner dimensions; row 0 = floor) and the items the manifest says are in the bin (:class:`KnownItem`: box
extents in the bin frame, catalogue mass and stiffness). Perceived blocked cells that no known item explains
(within one cell) are treated as fixed obstacles: nothing is pushed through them and they stay put.

Prediction model (1-D along the push, quasi-static; the planner's own, the world is the ground truth)
------------------------------------------------------------------------------------------------------
* The blade spans the band's height and the bin's depth. It contacts every item overlapping the band ahead of
  it; a moving box drives every box ahead of it whose y-z cross-section overlaps its own (they cannot pass).
* Rigid reach: the farthest blade position at which no driven box crosses a side wall or a fixed obstacle.
  Beyond it, squishy boxes in the jam yield, each by at most ``max_squeeze * (1 - stiffness)`` of its width
  (a shirt yields, a rigid box does not); if that is not enough the sweep is impossible (no room to push).
  A squeezed box springs back when the blade withdraws, so a squeeze is only useful while the blade holds it
  (the stow sequence ejects the item before retracting): such plans carry ``hold=True``.
* Force = sliding friction + spring. Friction: ``mu * g`` times the mass of every box that moves or is
  squeezed and of everything stacked on them (the whole stack presses on the floor). Spring: a squeezed box
  pushes back with ``k(stiffness) * squeeze``, ``k = k_soft + (k_rigid - k_soft) * stiffness`` N/mm; since
  how the squeeze spreads over a jammed chain is not known, each jam is charged its stiffest yielding box
  taking the whole overshoot (an upper bound for springs in series).
* Tip: pushing an upright box of width ``w`` at lever ``l`` above its base needs ``m g (w / 2) / l`` to tip
  it about its far bottom edge; it tips only if that is well below sliding friction. It lands on its side
  beyond the pivot (width and height swapped), which must be free.

Choice: every orientation of the stow item, every support level (floor, tops of known items), every blade gap
in the band and both directions; a candidate counts when the predicted scene (pushes, squeeze held, items that
lost support dropped) has a valid placement in the cleared span. A candidate whose predicted force exceeds
the tool limit is not planned. Least predicted force first, then shortest distance, then no squeeze.

Planned force limit: ``min(tool limit, max(force_margin * predicted, predicted + min_headroom_n))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from .bins import BinState, ItemDims
from .checks import PlanningError, real
from .placement import Placement, PlacementReason, find_placements, footprint_cells

__all__ = [
    "KnownItem",
    "SweepPlan",
    "SweepReason",
    "plan_sweep",
]

G = 9.81
_EPS = 1e-6


class SweepReason(StrEnum):
    """Why a sweep was (or was not) planned."""

    OK = "ok"
    NOT_NEEDED = "not_needed"  # the item already has a placement: stow without a sweep
    NOT_FRAGMENTED = "not_fragmented"  # no placement, and the free space is not what a sweep or tip can fix
    TOO_SMALL = "too_small"  # the item does not fit the bin in any allowed orientation
    NO_ENTRY = "no_entry"  # no gap in a useful band where the blade can enter
    NO_ROOM_TO_PUSH = "no_room_to_push"  # every sweep jams (walls, fixed obstacles, rigid boxes) too early
    NO_PLACEMENT_AFTER = "no_placement_after"  # feasible sweeps, but the predicted scene still has no placement
    FORCE_OVER_LIMIT = "force_over_limit"  # a sweep would free a placement, but needs more than the tool limit


# Most actionable first when nothing can be planned.
_REASON_PRIORITY = (
    SweepReason.FORCE_OVER_LIMIT,
    SweepReason.NO_PLACEMENT_AFTER,
    SweepReason.NO_ROOM_TO_PUSH,
    SweepReason.NO_ENTRY,
)


@dataclass(frozen=True, slots=True)
class KnownItem:
    """An item known to be in the bin: box extents in the bin frame (mm, min corner + size), mass, stiffness.

    ``x_mm, y_mm`` lower-left of its front face (from the left wall, above the floor), ``z_mm`` its front
    face's depth behind the opening. ``stiffness`` 0 squishy .. 1 rigid (the world's units). ``upright``
    marks a tall thin item standing on its end (a tip candidate).
    """

    item_id: int
    x_mm: float
    y_mm: float
    width_mm: float
    height_mm: float
    depth_mm: float
    mass_kg: float
    stiffness: float
    z_mm: float = 0.0
    upright: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.item_id, bool) or not isinstance(self.item_id, int | np.integer) or self.item_id < 1:
            raise PlanningError(f"item_id must be a positive int, got {self.item_id!r}")
        for name in ("x_mm", "y_mm", "z_mm"):
            real(f"item {self.item_id}: {name}", getattr(self, name), allow_zero=True)
        for name in ("width_mm", "height_mm", "depth_mm", "mass_kg"):
            real(f"item {self.item_id}: {name}", getattr(self, name))
        real(f"item {self.item_id}: stiffness", self.stiffness, allow_zero=True, upper=1.0)
        if not isinstance(self.upright, bool):
            raise PlanningError(f"item {self.item_id}: upright must be bool, got {type(self.upright).__name__}")

    @property
    def lo(self) -> tuple[float, float, float]:
        return (float(self.x_mm), float(self.y_mm), float(self.z_mm))

    @property
    def hi(self) -> tuple[float, float, float]:
        return (self.x_mm + self.width_mm, self.y_mm + self.height_mm, self.z_mm + self.depth_mm)


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """A planned sweep (or tip), or why there is none (``reason`` is not OK and the motion fields are empty).

    ``entry_mm``: (x, y) where the blade enters the bin face (for a sweep: its leading face at the band's
    centre; for a tip: the push point). ``band_mm``: the blade's (bottom, top) for a sweep. ``direction`` +1
    pushes right, -1 left. ``distance_mm``: blade travel. ``shifts_mm``: predicted signed x shift of each
    pushed item; ``squeeze_mm``: predicted squeeze of yielding items; ``hold``: the squeeze must be held
    (blade stays extended) while the item is ejected. ``placement``: the placement the motion frees.
    """

    reason: SweepReason
    detail: str = ""
    entry_mm: tuple[float, float] | None = None
    band_mm: tuple[float, float] | None = None
    direction: int = 0
    distance_mm: float = 0.0
    shifts_mm: dict[int, float] = field(default_factory=dict)
    squeeze_mm: dict[int, float] = field(default_factory=dict)
    predicted_force_n: float = 0.0
    force_limit_n: float = 0.0
    tip: bool = False
    tipped_item: int | None = None
    hold: bool = False
    placement: Placement | None = None
    candidates: int = 0  # candidates evaluated

    @property
    def ok(self) -> bool:
        return self.reason is SweepReason.OK


# ----------------------------------------------------------------------------------------------- geometry


@dataclass(slots=True)
class _Box:
    """Mutable working copy of a KnownItem's box."""

    item_id: int
    lo: list[float]
    size: list[float]
    mass: float
    stiffness: float

    @property
    def hi(self) -> list[float]:
        return [self.lo[k] + self.size[k] for k in range(3)]

    def copy(self) -> _Box:
        return _Box(self.item_id, list(self.lo), list(self.size), self.mass, self.stiffness)


def _boxes(items: Sequence[KnownItem]) -> list[_Box]:
    return [
        _Box(int(k.item_id), [float(v) for v in k.lo], [float(k.width_mm), float(k.height_mm), float(k.depth_mm)],
             float(k.mass_kg), float(k.stiffness))
        for k in items
    ]


def _overlap(a: _Box, b: _Box, axis: int) -> float:
    return min(a.hi[axis], b.hi[axis]) - max(a.lo[axis], b.lo[axis])


def _carried(boxes: list[_Box], base: set[int]) -> set[int]:
    """`base` plus everything stacked (directly or not) on those boxes."""
    out = set(base)
    grew = True
    while grew:
        grew = False
        for b in boxes:
            if b.item_id in out:
                continue
            for a in boxes:
                if a.item_id in out and abs(a.hi[1] - b.lo[1]) <= 1e-3 and _overlap(a, b, 0) > _EPS \
                        and _overlap(a, b, 2) > _EPS:
                    out.add(b.item_id)
                    grew = True
                    break
    return out


def _drop(boxes: list[_Box]) -> None:
    """Gravity: each box, lowest first, falls onto the floor or the highest box under its footprint."""
    done: list[_Box] = []
    for b in sorted(boxes, key=lambda q: (q.lo[1], q.item_id)):
        floor = max((q.hi[1] for q in done if q.hi[1] <= b.lo[1] + 1e-3 and _overlap(b, q, 0) > _EPS
                     and _overlap(b, q, 2) > _EPS), default=0.0)
        b.lo[1] = min(b.lo[1], floor)
        done.append(b)


def _raster(boxes: Sequence[_Box], shape: tuple[int, int], cell: float, max_z: float = math.inf) -> np.ndarray:
    """Cells any part of which a box covers (boxes starting deeper than `max_z` are skipped)."""
    out = np.zeros(shape, dtype=bool)
    rows, cols = shape
    for b in boxes:
        if b.lo[2] >= max_z - _EPS:
            continue
        h = b.hi
        c0, c1 = max(0, math.floor(b.lo[0] / cell + 1e-6)), min(cols, math.ceil(h[0] / cell - 1e-6))
        r0, r1 = max(0, math.floor(b.lo[1] / cell + 1e-6)), min(rows, math.ceil(h[1] / cell - 1e-6))
        if c1 > c0 and r1 > r0:
            out[r0:r1, c0:c1] = True
    return out


def _runs(free: npt.ArrayLike) -> list[tuple[int, int]]:
    """Half-open [c0, c1) runs of True."""
    padded = np.concatenate([[False], free, [False]]).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def _blocked(bin: BinState, depth: float) -> np.ndarray:
    return np.asarray(bin.occupancy, dtype=bool) | (bin.free_depth_mm < depth - 1e-9)


# ----------------------------------------------------------------------------------------------- push model


@dataclass(frozen=True, slots=True)
class _Params:
    mu: float
    max_squeeze: float
    k_soft: float
    k_rigid: float
    tool_limit: float


@dataclass(slots=True)
class _Push:
    ok: bool
    boxes: list[_Box]  # predicted boxes after the push (squeeze held), before dropping
    shifts: dict[int, float]
    squeeze: dict[int, float]
    force: float
    why: str = ""


def _push(boxes: list[_Box], band: tuple[float, float], x_e: float, direction: int, distance: float,
          width: float, obstacles: list[tuple[float, float]], p: _Params) -> _Push:
    """Predict a sweep: blade at `x_e` moving `distance` in `direction`; obstacles = fixed x-intervals."""
    n = len(boxes)
    # Sweep coordinates: s grows along the push.
    a = [b.lo[0] if direction > 0 else width - b.hi[0] for b in boxes]
    w = [b.size[0] for b in boxes]
    s0 = x_e if direction > 0 else width - x_e
    in_band = [min(b.hi[1], band[1]) - max(b.lo[1], band[0]) > _EPS for b in boxes]
    contacted = [in_band[j] and a[j] >= s0 - _EPS for j in range(n)]
    if any(in_band[j] and a[j] < s0 - _EPS < a[j] + w[j] - 2 * _EPS for j in range(n)):
        return _Push(False, [], {}, {}, 0.0, "blade entry inside an item")
    # Fixed obstacles ahead of the blade cap the boxes in the band; everything is capped by the far wall.
    obs_s = [(lo if direction > 0 else width - hi) for lo, hi in obstacles]
    cap_band = min([o for o in obs_s if o >= s0 - _EPS] + [width])
    cap = [cap_band if in_band[j] else width for j in range(n)]
    order = sorted(range(n), key=lambda j: a[j])
    drives = {j: [i for i in range(n) if i != j and a[i] + w[i] <= a[j] + _EPS
                  and _overlap(boxes[i], boxes[j], 1) > _EPS and _overlap(boxes[i], boxes[j], 2) > _EPS]
              for j in range(n)}

    def place(blade: float, ws: list[float]) -> tuple[list[float], list[bool]]:
        lo, moving = list(a), [False] * n
        for j in order:
            s = a[j]
            if contacted[j] and blade > a[j] + _EPS:
                s, moving[j] = blade, True
            for i in drives[j]:
                if moving[i] and lo[i] + ws[i] > s + _EPS:
                    s, moving[j] = lo[i] + ws[i], True
            lo[j] = s
        return lo, moving

    target = s0 + distance
    lo, moving = place(target, w)
    over = {j: lo[j] + w[j] - cap[j] for j in range(n) if moving[j] and lo[j] + w[j] > cap[j] + 1e-6}
    squeeze: dict[int, float] = {}
    ws = list(w)
    spring = 0.0
    if over:
        w_min = [w[j] * (1.0 - p.max_squeeze * (1.0 - boxes[j].stiffness)) for j in range(n)]
        lo_min, mov_min = place(target, w_min)
        if any(mov_min[j] and lo_min[j] + w_min[j] > cap[j] + 1e-6 for j in range(n)):
            return _Push(False, [], {}, {}, 0.0, "jams against a wall or a fixed obstacle")
        # Squeeze each jam's chain (the boxes driving the overshooting one, touching) by its overshoot.
        for j, excess in over.items():
            chain, stack = {j}, [j]
            while stack:
                k = stack.pop()
                for i in drives[k]:
                    if moving[i] and i not in chain and abs(lo[i] + w[i] - lo[k]) <= 1e-6:
                        chain.add(i)
                        stack.append(i)
            soft = [i for i in chain if w[i] - w_min[i] > _EPS]
            total = sum(w[i] - w_min[i] for i in soft)
            for i in soft:
                squeeze[boxes[i].item_id] = max(squeeze.get(boxes[i].item_id, 0.0),
                                                excess * (w[i] - w_min[i]) / total)
            k_max = max(p.k_soft + (p.k_rigid - p.k_soft) * boxes[i].stiffness for i in soft)
            spring += k_max * excess
        ws = [w[j] - squeeze.get(boxes[j].item_id, 0.0) for j in range(n)]
        lo, moving = place(target, ws)
        if any(moving[j] and lo[j] + ws[j] > cap[j] + 1e-6 for j in range(n)):
            ws = [min(ws[j], max(w_min[j], cap[j] - lo[j])) if moving[j] else ws[j] for j in range(n)]
            squeeze = {boxes[j].item_id: w[j] - ws[j] for j in range(n) if w[j] - ws[j] > _EPS}
    out = [b.copy() for b in boxes]
    shifts: dict[int, float] = {}
    for j, b in enumerate(out):
        if not moving[j] and boxes[j].item_id not in squeeze:
            continue
        shift = lo[j] - a[j]
        if shift > _EPS:
            shifts[b.item_id] = shift * direction
        b.size[0] = ws[j]
        b.lo[0] = lo[j] if direction > 0 else width - lo[j] - ws[j]
    moved_ids = set(shifts) | set(squeeze)
    load = sum(b.mass for b in boxes if b.item_id in _carried(boxes, moved_ids))
    force = p.mu * G * load + spring
    return _Push(True, out, shifts, squeeze, force)


# ----------------------------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class _Candidate:
    key: tuple[float, float, int]
    plan: SweepPlan


def _limit(force: float, tool: float, margin: float, headroom: float) -> float:
    return min(tool, max(force * margin, force + headroom))


def _placement_in(blocked: np.ndarray, cell: float, w: float, h: float, span: tuple[float, float],
                  row: int | None, min_support: float) -> Placement | None:
    """Best placement of the w x h footprint inside the x-span (and on `row` if given), or None."""
    res = find_placements(blocked, cell, w, h, min_support_fraction=min_support, max_results=None)
    for pl in res.placements:
        if pl.x_mm >= span[0] - 1e-6 and pl.x_mm + w <= span[1] + 1e-6 and (row is None or
                                                                            round(pl.y_mm / cell) == row):
            return pl
    return None


def _check_items(bin: BinState, items: object) -> list[KnownItem]:
    if isinstance(items, KnownItem) or not isinstance(items, Sequence):
        raise PlanningError(f"known_items must be a sequence of KnownItem, got {type(items).__name__}")
    out = list(items)
    for k in out:
        if not isinstance(k, KnownItem):
            raise PlanningError(f"known_items must contain KnownItem, got {type(k).__name__}")
        lim = (bin.width_mm, bin.height_mm, bin.depth_mm)
        if any(k.hi[i] > lim[i] + 1e-3 for i in range(3)):
            raise PlanningError(f"item {k.item_id} extends outside bin {bin.bin_id}")
    ids = [k.item_id for k in out]
    if len(set(ids)) != len(ids):
        raise PlanningError(f"duplicate known item ids: {sorted(ids)}")
    return out


def plan_sweep(
    bin: BinState,
    known_items: Sequence[KnownItem],
    item: ItemDims,
    *,
    tool_force_limit_n: float = 40.0,
    allow_rotation: bool = True,
    allow_tip: bool = True,
    allow_squeeze: bool = True,
    friction_coefficient: float = 0.45,
    max_squeeze: float = 0.4,
    k_soft_n_per_mm: float = 0.1,
    k_rigid_n_per_mm: float = 5.0,
    force_margin: float = 1.5,
    min_headroom_n: float = 2.0,
    blade_clearance_mm: float = 5.0,
    push_margin_mm: float | None = None,
    min_support_fraction: float = 0.5,
) -> SweepPlan:
    """Plan the sweep (or tip) that frees a placement for `item` in `bin`, or say why there is none.

    `friction_coefficient`, `max_squeeze` and the spring constants are the planner's estimates (see module
    doc). `push_margin_mm` (default half a cell, at least 2 mm) is pushed beyond the footprint's edge.
    """
    if not isinstance(bin, BinState):
        raise PlanningError(f"bin must be a BinState, got {type(bin).__name__}")
    if not isinstance(item, ItemDims):
        raise PlanningError(f"item must be ItemDims, got {type(item).__name__}")
    known = _check_items(bin, known_items)
    for name, flag in (("allow_rotation", allow_rotation), ("allow_tip", allow_tip), ("allow_squeeze", allow_squeeze)):
        if not isinstance(flag, bool):
            raise PlanningError(f"{name} must be bool, got {type(flag).__name__}")
    tool = real("tool_force_limit_n", tool_force_limit_n)
    params = _Params(real("friction_coefficient", friction_coefficient, upper=2.0),
                     real("max_squeeze", max_squeeze, allow_zero=True, upper=0.9) if allow_squeeze else 0.0,
                     real("k_soft_n_per_mm", k_soft_n_per_mm), real("k_rigid_n_per_mm", k_rigid_n_per_mm), tool)
    margin = real("force_margin", force_margin)
    if margin < 1.0:
        raise PlanningError(f"force_margin must be >= 1, got {force_margin!r}")
    headroom = real("min_headroom_n", min_headroom_n, allow_zero=True)
    clearance = real("blade_clearance_mm", blade_clearance_mm)
    cell = bin.cell_mm
    push_margin = max(2.0, 0.5 * cell) if push_margin_mm is None else real("push_margin_mm", push_margin_mm,
                                                                              allow_zero=True)
    min_support = real("min_support_fraction", min_support_fraction, upper=1.0)

    blocked = _blocked(bin, item.depth_mm)
    before = find_placements(blocked, cell, item.width_mm, item.height_mm, allow_rotation=allow_rotation,
                             min_support_fraction=min_support, max_results=1)
    if before.ok:
        return SweepPlan(SweepReason.NOT_NEEDED, f"a placement exists without a sweep: {before.best}",
                         placement=before.best)
    if before.reason is PlacementReason.TOO_SMALL or item.depth_mm > bin.depth_mm:
        return SweepPlan(SweepReason.TOO_SMALL, before.detail or "item deeper than the bin")
    # FRAGMENTED: merging gaps may do; NO_CONTIGUOUS_SPACE: squeezing soft items may add the rest.
    sweepable = before.reason in (PlacementReason.FRAGMENTED, PlacementReason.NO_CONTIGUOUS_SPACE)
    tippable = allow_tip and before.reason in (PlacementReason.FRAGMENTED, PlacementReason.NO_CONTIGUOUS_SPACE,
                                               PlacementReason.UNSUPPORTED)
    if not (sweepable or tippable):
        return SweepPlan(SweepReason.NOT_FRAGMENTED, f"{before.reason}: {before.detail}")

    boxes = _boxes(known)
    shape = blocked.shape
    rows, cols = shape
    face = _raster(boxes, shape, cell, item.depth_mm)
    explained = face.copy()
    explained[:, 1:] |= face[:, :-1]
    explained[:, :-1] |= face[:, 1:]
    fixed = blocked & ~explained  # perceived obstacles no known item accounts for

    failures: dict[SweepReason, str] = {}
    found: list[_Candidate] = []
    evaluated = 0

    def after(pred: list[_Box]) -> np.ndarray:
        _drop(pred)
        return fixed | _raster(pred, shape, cell, item.depth_mm)

    def consider(force: float, dist: float, squeeze: bool, plan: SweepPlan) -> None:
        if force > tool + 1e-9:
            failures.setdefault(SweepReason.FORCE_OVER_LIMIT,
                                f"predicted {force:.1f} N > tool limit {tool:.1f} N (items {sorted(plan.shifts_mm)})")
            return
        found.append(_Candidate((round(force, 6), round(dist, 6), int(squeeze)),
                                replace(plan, force_limit_n=_limit(force, tool, margin, headroom))))

    orientations = [(item.width_mm, item.height_mm)]
    if allow_rotation and item.width_mm != item.height_mm:
        orientations.append((item.height_mm, item.width_mm))

    if sweepable:
        full = _raster(boxes, shape, cell)  # every known box, at any depth: the blade spans the whole depth
        levels = sorted({0} | {math.ceil(b.hi[1] / cell - 1e-6) for b in boxes})
        for w, h in orientations:
            kw, kh = footprint_cells(w, h, cell)
            for r0 in levels:
                if r0 + kh > rows or kw > cols:
                    continue
                band_free = ~blocked[r0:r0 + kh].any(axis=0)
                band = (r0 * cell, min((r0 + kh) * cell, bin.height_mm))
                soft = sum(b.size[0] * params.max_squeeze * (1 - b.stiffness) for b in boxes
                           if min(b.hi[1], band[1]) - max(b.lo[1], band[0]) > _EPS)
                if band_free.sum() * cell + soft < kw * cell:
                    continue  # not enough free columns in this band even if merged and squeezed
                paddle_free = band_free & ~full[r0:r0 + kh].any(axis=0)
                fixed_cols = fixed[r0:r0 + kh].any(axis=0)
                obstacles = [(c0 * cell, min(c1 * cell, bin.width_mm)) for c0, c1 in _runs(fixed_cols)]
                gaps = _runs(paddle_free)
                if not gaps:
                    failures.setdefault(SweepReason.NO_ENTRY, f"no blade gap in band {band}")
                for c0, c1 in gaps:
                    x_l, x_r = c0 * cell, min(c1 * cell, bin.width_mm)
                    half = (x_r - x_l) / 2
                    for direction in (1, -1):
                        if direction > 0:
                            x_e, goal = x_r - min(clearance, half), x_l + kw * cell + push_margin
                            dist = goal - x_e
                        else:
                            x_e, goal = x_l + min(clearance, half), x_r - kw * cell - push_margin
                            dist = x_e - goal
                        if dist <= 0 or goal < -_EPS or goal > bin.width_mm + _EPS:
                            continue
                        evaluated += 1
                        res = _push(boxes, band, x_e, direction, dist, bin.width_mm, obstacles, params)
                        if not res.ok:
                            failures.setdefault(SweepReason.NO_ROOM_TO_PUSH, res.why)
                            continue
                        span = (x_l, goal) if direction > 0 else (goal, x_r)
                        pl = _placement_in(after(res.boxes), cell, w, h, span, r0, min_support)
                        if pl is None:
                            failures.setdefault(SweepReason.NO_PLACEMENT_AFTER,
                                                f"sweep from x={x_e:.0f} dir {direction:+d} leaves no placement")
                            continue
                        if (w, h) != (item.width_mm, item.height_mm):
                            pl = replace(pl, rotated=True)
                        plan = SweepPlan(
                            SweepReason.OK, f"sweep {'right' if direction > 0 else 'left'} from x={x_e:.1f} mm",
                            entry_mm=(x_e, (band[0] + band[1]) / 2), band_mm=band, direction=direction,
                            distance_mm=dist, shifts_mm=res.shifts, squeeze_mm=res.squeeze,
                            predicted_force_n=res.force, hold=bool(res.squeeze), placement=pl)
                        consider(res.force, dist, bool(res.squeeze), plan)

    if tippable:
        for k, b in enumerate(boxes):
            if not known[k].upright or b.size[1] <= b.size[0]:
                continue
            if _carried(boxes, {b.item_id}) != {b.item_id}:
                failures.setdefault(SweepReason.NO_ROOM_TO_PUSH, f"items rest on upright item {b.item_id}")
                continue
            wt, ht, _ = b.size
            lever = 0.8 * ht
            force = b.mass * G * (wt / 2) / lever
            if force >= 0.5 * 0.3 * b.mass * G:  # it would slide, not tip, on a slippery floor (mu >= 0.3)
                continue
            y_push = b.lo[1] + lever
            for direction in (1, -1):
                evaluated += 1
                x_new = b.hi[0] if direction > 0 else b.lo[0] - ht
                landed = b.copy()
                landed.lo[0], landed.size[0], landed.size[1] = x_new, ht, wt
                others = [q for q in boxes if q.item_id != b.item_id]
                land_raster = _raster([landed], shape, cell)
                if x_new < -_EPS or x_new + ht > bin.width_mm + _EPS or any(
                        all(_overlap(landed, q, ax) > _EPS for ax in range(3)) for q in others) \
                        or (fixed & land_raster).any():
                    failures.setdefault(SweepReason.NO_ROOM_TO_PUSH, f"no room to tip item {b.item_id}")
                    continue
                x_blade = b.lo[0] - clearance / 2 if direction > 0 else b.hi[0] + clearance / 2
                row_p = min(rows - 1, int(y_push // cell))
                col_p = int(min(max(x_blade, 0.0), bin.width_mm - _EPS) // cell)
                if not (0 <= x_blade <= bin.width_mm) or blocked[row_p, col_p]:
                    failures.setdefault(SweepReason.NO_ENTRY, f"no room for the blade beside item {b.item_id}")
                    continue
                pred = [q.copy() for q in others] + [landed]
                img = after(pred)
                pl = None
                for w, h in orientations:
                    pl = _placement_in(img, cell, w, h, (0.0, bin.width_mm), None, min_support)
                    if pl is not None:
                        if (w, h) != (item.width_mm, item.height_mm):
                            pl = replace(pl, rotated=True)
                        break
                if pl is None:
                    failures.setdefault(SweepReason.NO_PLACEMENT_AFTER, f"tipping item {b.item_id} frees nothing")
                    continue
                dist = lever * wt / ht + clearance  # past the balance point; gravity does the rest
                plan = SweepPlan(
                    SweepReason.OK, f"tip item {b.item_id} {'right' if direction > 0 else 'left'}",
                    entry_mm=(x_blade, y_push), direction=direction, distance_mm=dist,
                    shifts_mm={b.item_id: x_new - b.lo[0]}, predicted_force_n=force, tip=True,
                    tipped_item=b.item_id, placement=pl)
                consider(force, dist, False, plan)

    if found:
        best = min(found, key=lambda c: c.key)
        return replace(best.plan, candidates=evaluated)
    for reason in _REASON_PRIORITY:
        if reason in failures:
            return SweepPlan(reason, failures[reason], candidates=evaluated)
    if evaluated == 0 and not failures:
        return SweepPlan(SweepReason.NOT_FRAGMENTED,
                         f"{before.reason}: no band with enough free or squeezable columns, no tip candidate")
    return SweepPlan(SweepReason.NO_ENTRY, f"{before.reason}: no candidate band or gap", candidates=evaluated)
