"""The simulated cell's physics: what each primitive does to the world and what the sensors see meanwhile.

`SimCell` owns the seeded world (a pod of bins), the conveyor's item stream, the FC's pick orders, the
tote and the tool's load, and a fault profile. `physics(primitive, params)` describes one motion: its
duration, the contact force over time, the suction pressure level and leaks, when the bin contents are
disturbed, any injected fault, and `commit(stopped_at_s)` to apply the motion's effect on the world
(all of it when it completed, none or part when the arm was stopped). The in-process simulated workcell
streams the sensors from this description on virtual time; the same model serves the protocol servers.
All randomness comes from one seeded generator, so a seed and a call sequence repeat exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..robot_map import FaultCode
from .faults import FaultRates
from .robot import DEFAULT_DURATIONS_S
from .world import (
    EPS,
    Bin,
    Item,
    PlacedItem,
    Pod,
    WorldError,
    generate_pod,
    insert,
    item_under,
    remove,
    resting_on,
    supporters,
    sweep,
)

MIN_ORDERABLE = 4  # items an FC order may name before the pod is rotated away

# Cell-level durations (s): the robot table plus the carry between conveyor, pod face and tote.
CELL_DURATIONS_S: dict[str, float] = {
    **DEFAULT_DURATIONS_S,
    "approach": 3.5, "grasp": 1.5, "eject_item": 2.0, "retract": 1.8, "place": 1.8, "extract": 1.8,
}
ROBOT_FAULT_CODE = int(FaultCode.SERVO_FAULT)
VACUUM_KPA = -70.0
LEAK_KPA = -12.0
CONVEYOR_INDEX_S = 1.5  # from acknowledging one item to the next one standing at the pick-up point


@dataclass(frozen=True, slots=True)
class Spike:
    """An unexpected contact: force rises linearly from 0 at ``at_s`` to ``peak_n`` over ``rise_s``."""

    at_s: float
    peak_n: float
    rise_s: float = 0.05


@dataclass(slots=True)
class Physics:
    """One motion as the simulated cell will play it; times are seconds from the motion's start."""

    duration_s: float
    contact_n: float = 0.0  # steady contact force reached over the motion (sweep push, eject friction)
    contact_from_s: float = 0.0  # when the steady contact starts ramping up
    spike: Spike | None = None
    vacuum_kpa: float | None = None  # pressure level the cup settles to (None: suction off)
    leak_at_s: float | None = None  # the seal breaks here (pressure rises to LEAK_KPA)
    disturb_at_s: float | None = None  # bin contents move here (the 10 Hz frames see it)
    frames_stop_at_s: float | None = None
    ft_stop_at_s: float | None = None
    no_answer: bool = False  # the controller stops answering (Modbus timeout)
    fault_at_s: float | None = None
    detail: str = ""
    commit: Callable[[float | None], str] = field(default=lambda _stopped: "")


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str
    bin_id: str
    item_id: int
    product_id: str = ""


class SimCell:
    """The world, the conveyor, the FC and the faults of one simulated cell (seeded)."""

    def __init__(self, seed: int, faults: FaultRates, *, rows: int = 4, cols: int = 3, jitter: float = 0.08) -> None:
        if not (0.0 <= jitter < 0.5):
            raise ValueError(f"jitter must lie in [0, 0.5), got {jitter}")
        self.seed = seed
        self.faults = faults
        self.jitter = jitter
        self.rng = np.random.default_rng(seed)
        self.rows, self.cols = rows, cols
        self.pods = 0
        self._next_id = 1
        self.versions: dict[str, int] = {}
        self.pod: Pod = self._new_pod()
        self._orders = 0
        self.arriving: Item | None = None  # at the conveyor's pick-up point
        self.held: Item | None = None  # in the gripper (stow) or on the cup (pick)
        self.tote: list[Item] = []
        self.ordered: int | None = None  # the item of the order handed out last (the tote check compares)
        self.wrong_items = 0  # items put in the tote that were not the one ordered
        self.hook_down = False

    # ------------------------------------------------------------------ helpers
    def _new_pod(self) -> Pod:
        """The next pod at the station (the FC rotates pods: a full one leaves, a fresh one arrives)."""
        self.pods += 1
        pod = generate_pod(self.rng, rows=self.rows, cols=self.cols, pod_id=f"P{self.pods}")
        for b in pod.bins:  # item ids stay unique across pods
            b.items = [replace(p, item=replace(p.item, item_id=p.item_id + self._next_id - 1)) for p in b.items]
            self.versions[b.bin_id] = 0
        self._next_id = 1 + max((p.item_id for b in pod.bins for p in b.items), default=self._next_id - 1)
        return pod

    def fill(self) -> float:
        """Fraction of the pod's volume taken by items."""
        used = sum(math.prod(p.item.size_mm) for b in self.pod.bins for p in b.items)
        return used / sum(b.width_mm * b.height_mm * b.depth_mm for b in self.pod.bins)

    def chance(self, p: float) -> bool:
        return p > 0.0 and float(self.rng.random()) < p

    def duration(self, primitive: str) -> float:
        return CELL_DURATIONS_S[primitive] * float(1.0 + self.rng.uniform(-self.jitter, self.jitter))

    def bin(self, index: float) -> Bin:
        i = int(index)
        if not (0 <= i < len(self.pod.bins)) or i != index:
            raise WorldError(f"no bin with index {index!r} (pod has {len(self.pod.bins)})")
        return self.pod.bins[i]

    def bin_index(self, bin_id: str) -> int:
        for i, b in enumerate(self.pod.bins):
            if b.bin_id == bin_id:
                return i
        raise WorldError(f"no bin {bin_id!r} in pod {self.pod.pod_id}")

    def touch(self, bin: Bin) -> None:
        self.versions[bin.bin_id] += 1

    # ------------------------------------------------------------------ conveyor and FC
    def next_arrival(self) -> tuple[Item, float, float]:
        """The next item on the conveyor, the index time (s) and how long the PLC link is down before it."""
        if self.fill() > 0.35:
            self.pod = self._new_pod()
        if self.arriving is None:
            w, h, d = (float(v) for v in self.rng.uniform((40, 30, 60), (180, 140, 250)))
            stiffness = float(self.rng.uniform(0.0, 1.0))
            mass = float(np.clip(w * h * d * 1e-9 * self.rng.uniform(150, 600), 0.05, 3.0))
            self.arriving = Item(self._next_id, f"SKU{self._next_id % 997:04d}", (w, h, d), mass, stiffness)
            self._next_id += 1
        down = float(self.rng.uniform(2.0, 6.0)) if self.chance(self.faults.plc_disconnect) else 0.0
        return self.arriving, CONVEYOR_INDEX_S, down

    def next_order(self) -> tuple[Order | None, float]:
        """An FC order for any item of the pod, whatever its status: the FC does not know what lies on what, so
        whether the item can be picked is the cell's decision (issue 13.6). A pod with fewer than MIN_ORDERABLE
        items big enough for the cup leaves the station."""
        down = float(self.rng.uniform(2.0, 6.0)) if self.chance(self.faults.plc_disconnect) else 0.0
        pool: list[tuple[str, int]] = []
        for b in self.pod.bins:
            for p in b.items:
                w, h, _ = p.item.size_mm
                if min(w, h) >= 40.0:  # the robot's item list: big enough for the cup
                    pool.append((b.bin_id, p.item_id))
        if len(pool) < MIN_ORDERABLE:
            self.pod = self._new_pod()
            return self.next_order()
        bin_id, item_id = pool[int(self.rng.integers(len(pool)))]
        self._orders += 1
        self.ordered = item_id
        product = self.pod.bin(bin_id).get(item_id).item.product_id
        return Order(f"O{self._orders:06d}", bin_id, item_id, product), down

    # ------------------------------------------------------------------ physics of one motion
    def physics(self, primitive: str, params: Mapping[str, float], force_limit_n: float | None) -> Physics:
        f = self.faults
        if primitive in ("open_band", "close_band"):
            return self._hook(primitive == "open_band")
        phys = getattr(self, f"_{primitive}")(params, force_limit_n)
        if self.chance(f.modbus_timeout):
            phys.no_answer = True
        elif self.chance(f.robot_fault):
            phys.fault_at_s = phys.duration_s * float(self.rng.uniform(0.1, 0.9))
        if force_limit_n is not None:
            if phys.spike is None and self.chance(f.unexpected_contact):
                phys.spike = Spike(phys.duration_s * float(self.rng.uniform(0.3, 0.9)), force_limit_n * 1.6)
            if self.chance(f.ft_dropout):
                phys.ft_stop_at_s = phys.duration_s * float(self.rng.uniform(0.1, 0.9))
        return phys

    def _hook(self, down: bool) -> Physics:
        def commit(stopped: float | None) -> str:
            if stopped is None:
                self.hook_down = down
            return ""

        return Physics(self.duration("open_band" if down else "close_band"), commit=commit)

    def _grasp(self, params: Mapping[str, float], limit: float | None) -> Physics:
        item = self.arriving
        if item is None:
            return Physics(self.duration("grasp"), fault_at_s=0.2, detail="no item at the pick-up point")
        slip = self.chance(self.faults.item_slip)

        def commit(stopped: float | None) -> str:
            if stopped is None and not slip:
                self.held, self.arriving = item, None
                return f"holding item {item.item_id}"
            return "item not held"

        phys = Physics(self.duration("grasp"), commit=commit)
        if slip:
            phys.fault_at_s, phys.detail = phys.duration_s * 0.8, "item slipped out of the belt plates"
        return phys

    def _approach(self, params: Mapping[str, float], limit: float | None) -> Physics:
        return Physics(self.duration("approach"), contact_n=1.5, contact_from_s=0.0)

    def _retract(self, params: Mapping[str, float], limit: float | None) -> Physics:
        return Physics(self.duration("retract"))

    def _extend_blade(self, params: Mapping[str, float], limit: float | None) -> Physics:
        return Physics(self.duration("extend_blade"), contact_n=2.0)

    def _sweep(self, params: Mapping[str, float], limit: float | None) -> Physics:
        b = self.bin(params["bin"])
        x, direction, distance = params["x"], int(params["direction"]), params["distance"]
        band = (params["y_lo"], params["y_hi"])
        # The blade pushes until done or until the force limit stalls it (the world caps at the limit).
        cap = limit if limit is not None else 200.0
        trial = Bin(b.bin_id, b.width_mm, b.height_mm, b.depth_mm, b.band_height_mm, list(b.items))
        result = sweep(trial, x, direction, distance, band, max_force_n=cap * 1.25)
        duration = self.duration("sweep")

        def commit(stopped: float | None) -> str:
            frac = 1.0 if stopped is None else min(1.0, stopped / duration)
            done = sweep(b, x, direction, distance * frac, band, max_force_n=cap * 1.25)
            self.touch(b)
            return f"swept {done.travel_mm:.0f} mm, {done.force_n:.1f} N, moved {len(done.moved_mm)} items"

        return Physics(duration, contact_n=result.force_n, contact_from_s=0.15 * duration, commit=commit)

    def _eject_item(self, params: Mapping[str, float], limit: float | None) -> Physics:
        duration = self.duration("eject_item")
        item = self.held
        if item is None:
            return Physics(duration, detail="belts ran empty")
        b = self.bin(params["bin"])
        w, h, d = item.size_mm
        if params.get("rotated", 0.0) >= 0.5:
            item = Item(item.item_id, item.product_id, (h, w, d), item.mass_kg, item.stiffness)
            w, h = h, w
        x, y = params["x"], params["y"]
        # The belts drive the item in until it meets something or the back wall.
        z = b.depth_mm - d
        for o in b.items:
            if min(o.hi[0], x + w) - max(o.lo[0], x) > EPS and min(o.hi[1], y + h) - max(o.lo[1], y) > EPS:
                z = min(z, o.lo[2] - d)
        blocked = z < -EPS
        slip = self.chance(self.faults.item_slip)

        def commit(stopped: float | None) -> str:
            if stopped is not None or blocked:
                return "item still on the tool"
            if slip:
                self.held = None
                return "item slipped and fell"  # lost in transit: verify will not find it
            try:
                insert(b, item, (x, y, max(0.0, z)))
            except WorldError as exc:
                return f"item stayed on the tool: {exc}"
            self.held = None
            self.touch(b)
            return f"item {item.item_id} in {b.bin_id} at x={x:.0f} y={y:.0f} z={max(0.0, z):.0f}"

        friction = 0.4 * 9.81 * item.mass_kg + 1.0
        phys = Physics(duration, contact_n=friction, contact_from_s=0.3 * duration, commit=commit)
        if blocked:
            phys.spike = Spike(0.5 * duration, (limit or 30.0) * 1.8, rise_s=0.2)
        return phys

    def under_cup(self, params: Mapping[str, float]) -> PlacedItem | None:
        """What the cup at the motion's point touches: the frontmost item there, whatever the planner meant
        (its `item` parameter is a label for logs; a wrong point picks the wrong item)."""
        return item_under(self.bin(params["bin"]), params["x"], params["y"])

    def _attach(self, params: Mapping[str, float], limit: float | None) -> Physics:
        present = self.under_cup(params) is not None
        leak = not present or self.chance(self.faults.suction_leak) or params.get("area_mm2", 1e9) < 500.0
        return Physics(self.duration("attach"), contact_n=4.0, vacuum_kpa=LEAK_KPA if leak else VACUUM_KPA)

    def _extract(self, params: Mapping[str, float], limit: float | None) -> Physics:
        b = self.bin(params["bin"])
        duration = self.duration("extract")
        target = self.under_cup(params)
        phys = Physics(duration, vacuum_kpa=VACUUM_KPA)
        if target is None:
            phys.vacuum_kpa = LEAK_KPA
            return phys
        item_id = target.item_id
        on_top = resting_on(b, item_id)
        heavy = target.item.mass_kg > 2.0
        if self.chance(self.faults.suction_leak) or self.chance(self.faults.item_slip) or (
            heavy and self.chance(0.2)
        ):
            phys.leak_at_s = duration * float(self.rng.uniform(0.2, 0.8))
        if (on_top and self.chance(0.8)) or self.chance(0.01):
            phys.disturb_at_s = duration * float(self.rng.uniform(0.1, 0.5))
        if self.chance(self.faults.frame_stall):
            phys.frames_stop_at_s = duration * float(self.rng.uniform(0.0, 0.7))
        phys.contact_n = 0.4 * 9.81 * sum(b.get(i).item.mass_kg for i in on_top) + 2.0

        def commit(stopped: float | None) -> str:
            if stopped is not None and (phys.leak_at_s is None or stopped < phys.leak_at_s - 1e-9):
                return "item left in the bin (stopped before it came out)"
            if phys.leak_at_s is not None and (stopped is None or stopped >= phys.leak_at_s):
                return "item dropped back into the bin"
            remove(b, item_id)
            self.held = target.item
            self.touch(b)
            return f"item {item_id} out of {b.bin_id}"

        phys.commit = commit
        return phys

    def _place(self, params: Mapping[str, float], limit: float | None) -> Physics:
        def commit(stopped: float | None) -> str:
            if stopped is None and self.held is not None:
                item, self.held = self.held, None
                self.tote.append(item)
                if self.ordered is not None and item.item_id != self.ordered:
                    self.wrong_items += 1  # the FC's check at the tote: not what was ordered
                    return f"item {item.item_id} in the tote: the wrong item (order {self.ordered})"
                return "item in the tote"
            return "nothing placed"

        return Physics(self.duration("place"), commit=commit)

    def _release(self, params: Mapping[str, float], limit: float | None) -> Physics:
        return Physics(self.duration("release"))

    # ------------------------------------------------------------------ disturbances
    def disturb(self, bin_index: float, item_id: int) -> bool:
        """The extraction drags a neighbour of ``item_id`` toward the opening; True when something moved."""
        b = self.bin(bin_index)
        try:
            target = b.get(item_id)
        except WorldError:
            return False
        for p in sorted(b.items, key=lambda q: q.item_id):
            if p.item_id == item_id:
                continue
            beside = abs(p.lo[0] - target.hi[0]) < 5 or abs(p.hi[0] - target.lo[0]) < 5
            near = beside or item_id in supporters(b, p.item_id)
            if near and p.lo[2] > 20:
                moved = p.moved(dz=-min(30.0, p.lo[2]))
                try:
                    b.check_placement(moved, ignore=p.item_id)
                except WorldError:
                    continue
                b.items = [moved if q.item_id == p.item_id else q for q in b.items]
                self.touch(b)
                return True
        return False


def force_trace(phys: Physics, t: np.ndarray, rng: np.random.Generator, noise_n: float = 0.3) -> np.ndarray:
    """Force magnitude (N) at times ``t`` (s from the motion's start) for this motion, with sensor noise."""
    f = np.zeros_like(t)
    if phys.contact_n > 0:
        ramp = max(phys.duration_s - phys.contact_from_s, 1e-3) * 0.5
        f += phys.contact_n * np.clip((t - phys.contact_from_s) / ramp, 0.0, 1.0)
    if phys.spike is not None:
        s = phys.spike
        f += s.peak_n * np.clip((t - s.at_s) / s.rise_s, 0.0, 1.0)
    return np.abs(f + rng.normal(0.0, noise_n, t.shape))


def pressure_trace(phys: Physics, t: np.ndarray, tau_s: float = 0.03) -> np.ndarray:
    """Suction gauge pressure (kPa) at ``t``: first order toward the seal level, up again after a leak."""
    level = phys.vacuum_kpa if phys.vacuum_kpa is not None else 0.0
    p = level * (1.0 - np.exp(-np.maximum(t, 0.0) / tau_s))
    if phys.leak_at_s is not None:
        after = t >= phys.leak_at_s
        p = np.where(after, LEAK_KPA + (p - LEAK_KPA) * np.exp(-(t - phys.leak_at_s) / tau_s), p)
    return p


def first_index(mask: np.ndarray) -> int | None:
    i = int(np.argmax(mask)) if mask.size else 0
    return i if mask.size and bool(mask[i]) else None
