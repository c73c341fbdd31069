"""A seeded world model of fabric pods: bins with an elastic band, box-shaped items, and their physics.

Units are millimetres. Bin frame: origin at the bin's front-bottom-left inner corner, x right
(0..width), y up (0..height), z into the bin (0..depth); the opening (and the band) is at z = 0.
Items are axis-aligned boxes given by their min corner (`position_mm`) and `size_mm`; a "leaning"
item is a tall, thin box tagged `leaning=True` that stands against a neighbour or a side wall.
The renderer lives in `drivers.sim.world_render`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

Vec3 = tuple[float, float, float]
Eligibility = Literal["free", "below", "blocked"]
EPS = 1e-6  # mm; faces closer than this touch
G = 9.81


class WorldError(ValueError):
    """An invalid item, bin, placement or world operation."""


def _vec3(value: object, what: str) -> Vec3:
    try:
        a, b, c = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise WorldError(f"{what} must be three numbers, got {value!r}") from exc
    if not all(math.isfinite(v) for v in (a, b, c)):
        raise WorldError(f"{what} must be finite, got {value!r}")
    return (a, b, c)


@dataclass(frozen=True, slots=True)
class Item:
    """A box-shaped product: `size_mm` = (width x, height y, depth z); stiffness 0 squishy .. 1 rigid."""

    item_id: int
    product_id: str
    size_mm: Vec3
    mass_kg: float
    stiffness: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.item_id, int) or isinstance(self.item_id, bool) or self.item_id < 1:
            raise WorldError(f"item_id must be a positive int (0 means 'no item'), got {self.item_id!r}")
        if not isinstance(self.product_id, str) or not self.product_id:
            raise WorldError(f"item {self.item_id}: product_id must be a non-empty string")
        size = _vec3(self.size_mm, f"item {self.item_id} size_mm")
        if min(size) <= 0:
            raise WorldError(f"item {self.item_id}: sizes must be positive, got {size}")
        object.__setattr__(self, "size_mm", size)
        if not (math.isfinite(self.mass_kg) and self.mass_kg > 0):
            raise WorldError(f"item {self.item_id}: mass_kg must be positive and finite, got {self.mass_kg}")
        if not (0.0 <= self.stiffness <= 1.0):
            raise WorldError(f"item {self.item_id}: stiffness must lie in [0, 1], got {self.stiffness}")


@dataclass(frozen=True, slots=True)
class PlacedItem:
    """An item at `position_mm` (its min corner) in the bin frame."""

    item: Item
    position_mm: Vec3
    leaning: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "position_mm", _vec3(self.position_mm, f"item {self.item.item_id} position_mm"))

    @property
    def item_id(self) -> int:
        return self.item.item_id

    @property
    def lo(self) -> Vec3:
        return self.position_mm

    @property
    def hi(self) -> Vec3:
        p, s = self.position_mm, self.item.size_mm
        return (p[0] + s[0], p[1] + s[1], p[2] + s[2])

    def moved(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> PlacedItem:
        p = self.position_mm
        return replace(self, position_mm=(p[0] + dx, p[1] + dy, p[2] + dz))


def _overlap(a: PlacedItem, b: PlacedItem, axis: int) -> float:
    """Length of the overlap of a and b along `axis` (<= 0: disjoint or touching)."""
    return min(a.hi[axis], b.hi[axis]) - max(a.lo[axis], b.lo[axis])


def _collide(a: PlacedItem, b: PlacedItem) -> bool:
    return all(_overlap(a, b, k) > EPS for k in range(3))


@dataclass(slots=True)
class Bin:
    """A fabric cubby open at the front (z = 0); the elastic band spans the opening at `band_height_mm`.

    The band is a horizontal strip `band_width_mm` tall centred `band_height_mm` above the floor,
    just in front of the opening (z in [-band_thickness_mm, 0]). `band_height_mm=None` puts it mid-height.
    """

    bin_id: str
    width_mm: float
    height_mm: float
    depth_mm: float
    band_height_mm: float | None = None
    items: list[PlacedItem] = field(default_factory=list)
    band_width_mm: float = 20.0
    band_thickness_mm: float = 3.0

    def __post_init__(self) -> None:
        dims = _vec3((self.width_mm, self.height_mm, self.depth_mm), f"bin {self.bin_id} dimensions")
        if min(dims) <= 0:
            raise WorldError(f"bin {self.bin_id}: width, height and depth must be positive, got {dims}")
        self.width_mm, self.height_mm, self.depth_mm = dims
        if self.band_height_mm is None:
            self.band_height_mm = self.height_mm / 2
        half = self.band_width_mm / 2
        if not (self.band_width_mm > 0 and self.band_thickness_mm > 0):
            raise WorldError(f"bin {self.bin_id}: band width and thickness must be positive")
        if not (half <= self.band_height_mm <= self.height_mm - half):
            raise WorldError(f"bin {self.bin_id}: band at {self.band_height_mm} mm does not fit the opening")
        self.items = list(self.items)
        self.validate()

    @property
    def band_y_mm(self) -> tuple[float, float]:
        """The band's (bottom, top) in the bin frame."""
        assert self.band_height_mm is not None
        return self.band_height_mm - self.band_width_mm / 2, self.band_height_mm + self.band_width_mm / 2

    def check_placement(self, placed: PlacedItem, *, ignore: int | None = None) -> None:
        """Raise WorldError unless `placed` lies inside the bin and overlaps no other item."""
        limits = (self.width_mm, self.height_mm, self.depth_mm)
        lo, hi = placed.lo, placed.hi
        for k, name in enumerate("xyz"):
            if lo[k] < -EPS or hi[k] > limits[k] + EPS:
                raise WorldError(
                    f"item {placed.item_id} spans {name} {lo[k]:.1f}..{hi[k]:.1f} mm, outside bin "
                    f"{self.bin_id} (0..{limits[k]:.1f} mm)"
                )
        for other in self.items:
            if other.item_id in (placed.item_id, ignore):
                continue
            if _collide(placed, other):
                raise WorldError(f"item {placed.item_id} would overlap item {other.item_id} in bin {self.bin_id}")

    def validate(self) -> None:
        ids = [p.item_id for p in self.items]
        if len(set(ids)) != len(ids):
            raise WorldError(f"bin {self.bin_id}: duplicate item ids {sorted(ids)}")
        for p in self.items:
            self.check_placement(p)

    def get(self, item_id: int) -> PlacedItem:
        for p in self.items:
            if p.item_id == item_id:
                return p
        raise WorldError(f"no item {item_id} in bin {self.bin_id}")


@dataclass(slots=True)
class Pod:
    """A shelf of bins."""

    pod_id: str
    bins: list[Bin] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [b.bin_id for b in self.bins]
        if len(set(ids)) != len(ids):
            raise WorldError(f"pod {self.pod_id}: duplicate bin ids {ids}")

    def bin(self, bin_id: str) -> Bin:
        for b in self.bins:
            if b.bin_id == bin_id:
                return b
        raise WorldError(f"no bin {bin_id} in pod {self.pod_id}")


# --------------------------------------------------------------------------------------------- queries


def occupied(bin: Bin) -> list[tuple[Vec3, Vec3]]:
    """The (min corner, max corner) of every item, mm, in the bin frame."""
    return [(p.lo, p.hi) for p in bin.items]


def supporters(bin: Bin, item_id: int) -> list[int]:
    """Items `item_id` rests on (their top touches its bottom, footprints overlap in x and z)."""
    a = bin.get(item_id)
    return [
        b.item_id
        for b in bin.items
        if b is not a and abs(b.hi[1] - a.lo[1]) <= EPS and _overlap(a, b, 0) > EPS and _overlap(a, b, 2) > EPS
    ]


def item_under(bin: Bin, x: float, y: float) -> PlacedItem | None:
    """The frontmost item whose front face (its x, y extent) contains the bin-frame point (mm): what a
    suction cup brought to (x, y) from the opening touches first."""
    hits = [q for q in bin.items if q.lo[0] <= x <= q.hi[0] and q.lo[1] <= y <= q.hi[1]]
    return min(hits, key=lambda q: q.lo[2]) if hits else None


def resting_on(bin: Bin, item_id: int) -> list[int]:
    """Items that rest on `item_id` ("below others" when non-empty)."""
    return [p.item_id for p in bin.items if p.item_id != item_id and item_id in supporters(bin, p.item_id)]


def in_front_of(bin: Bin, item_id: int) -> list[int]:
    """Items nearer the opening whose front-view silhouette overlaps `item_id`'s ("blocked" when non-empty)."""
    a = bin.get(item_id)
    return [
        b.item_id
        for b in bin.items
        if b is not a and b.hi[2] <= a.lo[2] + EPS and _overlap(a, b, 0) > EPS and _overlap(a, b, 1) > EPS
    ]


def visible_fraction(bin: Bin, item_id: int) -> float:
    """Fraction of the item's front face not covered by items in front of it (orthographic front view)."""
    a = bin.get(item_id)
    covers = [bin.get(i) for i in in_front_of(bin, item_id)]

    def cuts(k: int) -> list[float]:
        edges = {a.lo[k], a.hi[k]} | {min(max(e, a.lo[k]), a.hi[k]) for c in covers for e in (c.lo[k], c.hi[k])}
        return sorted(edges)

    xs, ys = cuts(0), cuts(1)
    free = 0.0
    for x0, x1 in itertools.pairwise(xs):
        for y0, y1 in itertools.pairwise(ys):
            xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
            if not any(c.lo[0] < xm < c.hi[0] and c.lo[1] < ym < c.hi[1] for c in covers):
                free += (x1 - x0) * (y1 - y0)
    w, h, _ = a.item.size_mm
    return free / (w * h)


def visible_items(bin: Bin) -> list[int]:
    """Ids of the items at least partly visible from the front (orthographic), sorted."""
    return sorted(p.item_id for p in bin.items if visible_fraction(bin, p.item_id) > 1e-9)


def ground_truth_eligibility(bin: Bin) -> dict[int, Eligibility]:
    """Per item: "blocked" if something is in front of it, else "below" if something rests on it, else "free"."""
    out: dict[int, Eligibility] = {}
    for p in bin.items:
        if in_front_of(bin, p.item_id):
            out[p.item_id] = "blocked"
        elif resting_on(bin, p.item_id):
            out[p.item_id] = "below"
        else:
            out[p.item_id] = "free"
    return out


# ------------------------------------------------------------------------------------------- mutations


def settle(bin: Bin) -> dict[int, float]:
    """Simple gravity: every item drops straight down onto the floor or the highest item beneath it.

    Returns the drop (mm, > 0) of each item that moved.
    """
    drops: dict[int, float] = {}
    done: list[PlacedItem] = []
    for p in sorted(bin.items, key=lambda q: (q.lo[1], q.item_id)):
        floor = max(
            (q.hi[1] for q in done if q.hi[1] <= p.lo[1] + EPS and _overlap(p, q, 0) > EPS and _overlap(p, q, 2) > EPS),
            default=0.0,
        )
        if p.lo[1] - floor > EPS:
            drops[p.item_id] = p.lo[1] - floor
            p = p.moved(dy=floor - p.lo[1])
        done.append(p)
    by_id = {p.item_id: p for p in done}
    bin.items = [by_id[p.item_id] for p in bin.items]
    return drops


def insert(bin: Bin, item: Item, position_mm: Vec3, *, leaning: bool = False, drop: bool = True) -> PlacedItem:
    """Place `item` at `position_mm` (validated: inside the bin, no overlap); with `drop` it then settles."""
    if any(p.item_id == item.item_id for p in bin.items):
        raise WorldError(f"item {item.item_id} is already in bin {bin.bin_id}")
    placed = PlacedItem(item, position_mm, leaning)
    bin.check_placement(placed)
    bin.items.append(placed)
    if drop:
        settle(bin)
    return bin.get(item.item_id)


def remove(bin: Bin, item_id: int) -> PlacedItem:
    """Take `item_id` out of the bin; items it supported drop to whatever supports them (see `settle`)."""
    placed = bin.get(item_id)
    bin.items = [p for p in bin.items if p.item_id != item_id]
    settle(bin)
    return placed


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What a sweep did. Distances in mm along the sweep direction, force in N.

    `travel_mm` is how far the paddle got while pushing (squishy items squeezed), `relaxed_travel_mm`
    how much of that stays once it withdraws and squeezed items spring back; `free_span_mm` is the
    cleared x-interval in the band, `moved_mm` the signed x shift per item, `compression_mm` the peak
    squeeze per item, and `stalled` says the paddle stopped short of `distance_mm`.
    """

    requested_mm: float
    travel_mm: float
    relaxed_travel_mm: float
    free_span_mm: tuple[float, float]
    moved_mm: dict[int, float]
    compression_mm: dict[int, float]
    force_n: float
    stalled: bool


def sweep(
    bin: Bin,
    x_from_mm: float,
    direction: int,
    distance_mm: float,
    height_band: tuple[float, float],
    *,
    mu: float = 0.4,
    max_compression: float = 0.5,
    max_force_n: float = 40.0,
    hold: bool = False,
) -> SweepResult:
    """Push items sideways with a paddle spanning y in `height_band` and the bin's whole depth.

    Model (1-D along x, quasi-static):
    - The paddle starts at `x_from_mm` (it must not start inside an item in the band) and moves
      `distance_mm` in `direction` (+1 right, -1 left). Items in the band ahead of it are pushed; a
      pushed item pushes every item ahead of it whose y-z cross-section overlaps its own (chains).
    - A chain that reaches a side wall jams. A squishy item can then be squeezed by up to
      `max_compression * (1 - stiffness)` of its width, letting the paddle go further; when nothing
      can squeeze any more the paddle stalls. Squeeze is shared by the jammed chain's items as the same
      fraction of each one's squeezable width. Squeezed items spring back when the paddle withdraws:
      the world keeps the rigid configuration at `relaxed_travel_mm`. With `hold` the paddle stays
      extended (as while an item is ejected into the cleared span): squeezed items keep their squeezed
      width and the free span reaches `travel_mm`.
    - Items resting on pushed items are not carried; afterwards `settle` drops any that lost support.
    - Force: friction `mu * g * m` for every moved item plus the items resting on it, plus a spring
      term `k(stiffness) * squeeze` per squeezed item with k = 0.05 + 4.95 * stiffness N/mm, capped at
      `max_force_n` (the tool's force limit); a stalled paddle reads `max_force_n`.
    """
    if direction not in (1, -1):
        raise WorldError(f"sweep direction must be +1 or -1, got {direction!r}")
    if not (math.isfinite(distance_mm) and distance_mm >= 0):
        raise WorldError(f"sweep distance must be finite and >= 0, got {distance_mm}")
    y_lo, y_hi = height_band
    if not (math.isfinite(y_lo) and math.isfinite(y_hi) and y_lo < y_hi):
        raise WorldError(f"height band must be finite with bottom < top, got {height_band}")
    if not (0 <= x_from_mm <= bin.width_mm):
        raise WorldError(f"sweep start {x_from_mm} mm lies outside bin {bin.bin_id} (0..{bin.width_mm} mm)")
    wall = bin.width_mm
    items = list(bin.items)
    n = len(items)
    width = [p.item.size_mm[0] for p in items]
    squeezable = [w * max_compression * (1 - p.item.stiffness) for w, p in zip(width, items, strict=True)]
    # Work in sweep coordinates: s increases along the sweep direction.
    x0 = [p.lo[0] if direction > 0 else wall - p.hi[0] for p in items]
    start = x_from_mm if direction > 0 else wall - x_from_mm
    contacted = set()
    for j, p in enumerate(items):
        if min(p.hi[1], y_hi) - max(p.lo[1], y_lo) > EPS:
            if x0[j] >= start - EPS:
                contacted.add(j)
            elif x0[j] + width[j] > start + EPS:
                raise WorldError(f"sweep starts inside item {p.item_id} at x = {x_from_mm} mm")
    order = sorted(range(n), key=lambda j: x0[j])
    pushers = {
        j: [i for i in range(n) if i != j and x0[i] + width[i] <= x0[j] + EPS
            and _overlap(items[i], items[j], 1) > EPS and _overlap(items[i], items[j], 2) > EPS]
        for j in range(n)
    }

    def offsets(ws: list[float]) -> list[float]:
        """Distance from the paddle to each item's near face when the chain is packed (-inf: not pushed)."""
        off = [-math.inf] * n
        for j in order:
            o = 0.0 if j in contacted else -math.inf
            for i in pushers[j]:
                o = max(o, off[i] + ws[i])
            off[j] = o
        return off

    def limit(ws: list[float]) -> float:
        off = offsets(ws)
        return min([wall - off[j] - ws[j] for j in range(n) if off[j] > -math.inf] + [wall])

    requested = start + distance_mm
    p_rigid = max(start, min(requested, limit(width)))
    min_width = [w - c for w, c in zip(width, squeezable, strict=True)]
    p_held = max(p_rigid, min(requested, limit(min_width)))
    off = offsets(width)
    compression: dict[int, float] = {}
    if p_held > p_rigid + EPS:
        jammed = {j for j in range(n) if off[j] > -math.inf and p_held + off[j] + width[j] > wall + EPS}
        stack = list(jammed)
        while stack:
            j = stack.pop()
            for i in pushers[j]:
                if i not in jammed and abs(off[i] + width[i] - off[j]) <= 1e-6:
                    jammed.add(i)
                    stack.append(i)
        if limit([min_width[j] if j in jammed else width[j] for j in range(n)]) < p_held - 1e-6:
            jammed = {j for j in range(n) if off[j] > -math.inf}
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            ws = [width[j] - mid * squeezable[j] if j in jammed else width[j] for j in range(n)]
            lo, hi = (lo, mid) if limit(ws) >= p_held - 1e-9 else (mid, hi)
        compression = {items[j].item_id: hi * squeezable[j] for j in sorted(jammed) if hi * squeezable[j] > EPS}
    moved: dict[int, float] = {}
    new_items = []
    held = hold and bool(compression)
    ws_held = [width[j] - compression.get(p.item_id, 0.0) for j, p in enumerate(items)]
    off_held = offsets(ws_held) if held else off
    p_stop = p_held if held else p_rigid
    for j, p in enumerate(items):
        shift = max(0.0, p_stop + off_held[j] - x0[j]) if off_held[j] > -math.inf else 0.0
        if shift > EPS:
            moved[p.item_id] = shift * direction
            p = p.moved(dx=shift * direction)
        if held and p.item_id in compression:
            w_new = ws_held[j]
            x_lo = p.lo[0] if direction > 0 else p.hi[0] - w_new  # squeezed on the side away from the paddle
            s = p.item.size_mm
            p = replace(p, item=replace(p.item, size_mm=(w_new, s[1], s[2])), position_mm=(x_lo, p.lo[1], p.lo[2]))
        new_items.append(p)
    load = {p.item_id: p.item.mass_kg for p in items if p.item_id in moved or p.item_id in compression}
    for i in list(load):
        for k in resting_on(bin, i):
            load.setdefault(k, bin.get(k).item.mass_kg)
    stalled = p_held < requested - EPS
    by_id = {p.item_id: p for p in items}
    spring = sum((0.05 + 4.95 * by_id[i].item.stiffness) * c for i, c in compression.items())
    force = max_force_n if stalled else min(max_force_n, mu * G * sum(load.values()) + spring)
    bin.items = new_items
    settle(bin)
    bin.validate()
    span = (x_from_mm, x_from_mm + p_stop - start) if direction > 0 else (x_from_mm - (p_stop - start), x_from_mm)
    return SweepResult(
        requested_mm=distance_mm,
        travel_mm=p_held - start,
        relaxed_travel_mm=p_rigid - start,
        free_span_mm=span,
        moved_mm=moved,
        compression_mm=compression,
        force_n=force,
        stalled=stalled,
    )


@dataclass(frozen=True, slots=True)
class TipResult:
    """What a tip did: `tipped` (the item now lies on its side), the peak push force (N) and why not if not."""

    tipped: bool
    force_n: float
    reason: str = ""


def tip(
    bin: Bin,
    item_id: int,
    direction: int,
    push_height_mm: float,
    *,
    mu: float = 0.4,
    max_force_n: float = 40.0,
) -> TipResult:
    """Tip a standing item 90 degrees about its bottom edge on the `direction` side with a horizontal blade.

    The blade pushes the item's face at `push_height_mm` (bin frame) towards `direction`. Quasi-static:
    the item tips once the push's moment about the pivot edge beats its weight's, F = m g (w / 2) / lever
    (lever = push height above the item's bottom), unless sliding is cheaper (mu m g <= F: it slides, no
    tip) or F exceeds `max_force_n` (stalls, reads `max_force_n`). It then lies on its side beyond the pivot:
    width and height swap. Nothing may rest on it and the landing box must be free (else nothing moves).
    """
    if direction not in (1, -1):
        raise WorldError(f"tip direction must be +1 or -1, got {direction!r}")
    p = bin.get(item_id)
    w, h, d = p.item.size_mm
    lever = push_height_mm - p.lo[1]
    if not (math.isfinite(lever) and 0 < lever <= h):
        raise WorldError(f"push height {push_height_mm} mm is not on item {item_id} ({p.lo[1]}..{p.hi[1]} mm)")
    if resting_on(bin, item_id):
        return TipResult(False, 0.0, f"items rest on item {item_id}")
    x = p.hi[0] if direction > 0 else p.lo[0] - h
    landed = PlacedItem(replace(p.item, size_mm=(h, w, d)), (x, p.lo[1], p.lo[2]))
    try:
        bin.check_placement(landed, ignore=item_id)
    except WorldError as exc:
        return TipResult(False, 0.0, f"no room to land: {exc}")
    weight = p.item.mass_kg * G
    force = weight * (w / 2) / lever
    if force >= mu * weight:
        return TipResult(False, min(max_force_n, mu * weight), "slides instead of tipping")
    if force > max_force_n:
        return TipResult(False, max_force_n, "stalled")
    bin.items = [landed if q.item_id == item_id else q for q in bin.items]
    settle(bin)
    bin.validate()
    return TipResult(True, force)


# ------------------------------------------------------------------------------------------- generator

_ALNUM = list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789")


def _as_rng(rng_or_seed: np.random.Generator | int) -> np.random.Generator:
    return rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)


def generate_bin(
    rng_or_seed: np.random.Generator | int,
    *,
    density: float = 0.5,
    width_mm: float = 450.0,
    height_mm: float = 300.0,
    depth_mm: float = 350.0,
    band_height_mm: float | None = None,
    bin_id: str = "bin",
    first_item_id: int = 1,
) -> Bin:
    """Seeded, realistic bin contents: 0 = empty .. 1 = dense. Same seed and arguments -> identical bin.

    A front row stands on the floor left to right (filling about `density` of the width); some items
    are tall and thin and lean against their left neighbour or the left wall (`leaning=True`); some
    carry a stack of smaller items; some have an item behind them (deeper in the bin, often hidden).
    Sizes 20-300 mm, masses 0.05-3 kg from volume x a random bulk density, stiffness spread over [0, 1].
    """
    if not (0.0 <= density <= 1.0):
        raise WorldError(f"density must lie in [0, 1], got {density}")
    rng = _as_rng(rng_or_seed)
    bin = Bin(bin_id, width_mm, height_mm, depth_mm, band_height_mm)
    next_id = first_item_id

    def make(w: float, h: float, d: float, x: float, y: float, z: float, leaning: bool = False) -> PlacedItem:
        nonlocal next_id
        mass = float(np.clip(w * h * d * 1e-9 * rng.uniform(80.0, 600.0), 0.05, 3.0))
        item = Item(
            item_id=next_id,
            product_id="B0" + "".join(rng.choice(_ALNUM, 8)),
            size_mm=(float(w), float(h), float(d)),
            mass_kg=round(mass, 3),
            stiffness=round(float(rng.beta(0.8, 0.8)), 3),
        )
        next_id += 1
        placed = PlacedItem(item, (float(x), float(y), float(z)), leaning)
        bin.items.append(placed)
        return placed

    if density == 0.0 or min(width_mm, height_mm, depth_mm) < 40:
        return bin
    row: list[PlacedItem] = []
    x = float(rng.uniform(0.0, 15.0))
    while x < density * width_mm:
        lean = rng.random() < 0.2 and height_mm >= 140 and depth_mm >= 60
        if lean:
            w, h = rng.uniform(20.0, 60.0), rng.uniform(120.0, min(300.0, height_mm - 10))
            d = rng.uniform(60.0, min(250.0, depth_mm))
            x = row[-1].hi[0] if row else 0.0  # against the neighbour or the left wall
        else:
            # Skewed towards small items, as in real bins.
            w = 30.0 + (min(300.0, 0.6 * width_mm) - 30.0) * rng.random() ** 2
            h = 30.0 + (min(250.0, height_mm - 10) - 30.0) * rng.random() ** 1.5
            d = 30.0 + (min(300.0, depth_mm) - 30.0) * rng.random()
        w = min(w, width_mm - x - 0.1)
        if w < 20.0:
            break
        z = rng.uniform(0.0, min(30.0, depth_mm - d))
        f = make(w, h, d, x, 0.0, z, lean)
        row.append(f)
        x = f.hi[0] + rng.uniform(0.0, 40.0 * (1.0 - density) + 2.0)
    for f in row:
        fw = f.item.size_mm[0]
        behind_z = f.hi[2] + rng.uniform(0.0, 10.0)
        if rng.random() < 0.7 * density and depth_mm - behind_z >= 30.0:
            bw = max(min(20.0, fw), fw * rng.uniform(0.5, 1.0))
            make(bw, rng.uniform(30.0, min(280.0, height_mm - 10)), rng.uniform(30.0, min(250.0, depth_mm - behind_z)),
                 f.lo[0] + rng.uniform(0.0, fw - bw), 0.0, behind_z)
        base = f
        while not base.leaning and rng.random() < 0.5 * density and height_mm - base.hi[1] - 5 >= 30.0:
            bw, _, bd = (max(min(20.0, s), s * rng.uniform(0.4, 1.0)) for s in base.item.size_mm)
            base = make(bw, rng.uniform(30.0, min(200.0, height_mm - base.hi[1] - 5)), bd,
                        base.lo[0] + rng.uniform(0.0, base.item.size_mm[0] - bw), base.hi[1],
                        base.lo[2] + rng.uniform(0.0, base.item.size_mm[2] - bd))
    bin.validate()
    return bin


def generate_pod(
    rng_or_seed: np.random.Generator | int, *, rows: int = 3, cols: int = 2, pod_id: str = "pod"
) -> Pod:
    """A pod of rows x cols bins with seeded sizes and densities; item ids are unique across the pod."""
    rng = _as_rng(rng_or_seed)
    bins: list[Bin] = []
    next_id = 1
    for r in range(rows):
        for c in range(cols):
            b = generate_bin(
                rng,
                density=float(rng.uniform(0.0, 1.0)),
                width_mm=float(rng.choice([230.0, 330.0, 450.0])),
                height_mm=float(rng.choice([200.0, 280.0, 350.0])),
                depth_mm=float(rng.choice([300.0, 350.0, 400.0])),
                bin_id=f"{pod_id}-{r}{chr(ord('A') + c)}",
                first_item_id=next_id,
            )
            next_id += len(b.items)
            bins.append(b)
    return Pod(pod_id, bins)
