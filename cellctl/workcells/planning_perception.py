"""What every perception of the cell shares: the planners on a bin's state, and the primitives of a plan.

`PlanningPerception` turns a bin's front-face state (`placement_state`, `geometry_state`) and its items
(`known_items`) into stow options (placements, sweeps) and suction candidates into pick plans. Where those come
from is its subclasses' business: the simulated world's labels (`sim_perception.WorldPerception`, the oracle) or
camera frames alone (`learned_perception.LearnedPerception`). It knows the pod only as a `PodLayout`: bin ids and
dimensions, never contents. Plans carry bin-relative targets; `drivers.pod_frame` maps them onto the pod face.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from drivers.camera import Intrinsics
from drivers.sim.world_render import CameraPose
from perception.occupancy import BinGeometry
from planning.bins import BinEvaluation, BinReason, BinState, ItemDims, choose_bin
from planning.checks import PlanningError
from planning.stow import ExtendBlade, Retract, Sweep, stow_primitives
from planning.suction import CandidateResult
from planning.sweep import KnownItem, plan_sweep
from planning.sweep import SweepPlan as PlannedSweep
from statecharts.workcell import (
    Eligibility,
    ItemArrival,
    Motion,
    MotionResult,
    PickCandidate,
    PickOrder,
    PickPlan,
    Primitive,
    StowOption,
    StowPlan,
    SweepPlan,
    Verification,
)

from .pod_layout import BinDims, PodLayout

__all__ = ["SWEEP_REASONS", "CameraConfig", "PlanningPerception"]

# Bins rejected for these reasons have the free area but not in one piece: a sweep may merge it.
SWEEP_REASONS = (BinReason.FRAGMENTED, BinReason.NO_CONTIGUOUS_SPACE)


@dataclass(frozen=True)
class CameraConfig:
    width: int = 320
    height: int = 240
    hfov_deg: float = 70.0
    standoff_mm: float = 350.0
    noise_k: float = 0.0025  # depth noise sigma = noise_k * z^2 (m)
    cell_m: float = 0.01  # front-face map resolution
    sweep_below_bins: int = 2  # plan sweeps when fewer bins than this have a placement without one
    sweep_max_bins: int = 3  # at most this many bins get a sweep planned per stow plan
    tool_force_limit_n: float = 40.0  # the stow tool's rating: no sweep is planned to need more


class PlanningPerception(ABC):
    """The planners on the bin states a subclass perceives (synchronous, CPU-bound)."""

    kind = "planning"

    def __init__(self, layout: PodLayout, camera: CameraConfig | None = None) -> None:
        self.layout = layout
        self.camera = camera or CameraConfig()
        self.k = Intrinsics.from_fov(self.camera.width, self.camera.height, self.camera.hfov_deg)
        self.pose = CameraPose(standoff_mm=self.camera.standoff_mm)

    # ------------------------------------------------------------------ what a subclass perceives
    @abstractmethod
    def placement_state(self, b: BinDims, depth_mm: float) -> BinState:
        """The bin's state for the placement search."""

    @abstractmethod
    def geometry_state(self, b: BinDims, depth_mm: float) -> BinState:
        """The bin's state for the sweep planner."""

    @abstractmethod
    def known_items(self, b: BinDims) -> list[KnownItem]:
        """The bin's items as the sweep planner takes them."""

    @abstractmethod
    def verify(self, item: ItemArrival, option: StowOption) -> Verification:
        """Whether the stowed item is where the option put it."""

    @abstractmethod
    def eligibility(self, order: PickOrder) -> Eligibility:
        """Whether the order's item may be picked."""

    @abstractmethod
    def pick_plan(self, order: PickOrder) -> PickPlan:
        """Suction candidates for the order's item."""

    def motion_result(self, motion: Motion, result: MotionResult) -> None:  # noqa: B027  # a hook: most keep nothing
        """What a finished motion tells perception: nothing, unless a subclass keeps something of it."""

    # ------------------------------------------------------------------ geometry
    def bin_point(self, b: BinDims, camera_point_m: np.ndarray) -> tuple[float, float]:
        """A camera-frame point (m) -> bin-relative face coordinates (x, y) in mm."""
        origin = self.pose.origin_mm(b)
        p = np.asarray(camera_point_m, dtype=np.float64) * 1000.0
        return round(float(p[0] + origin[0]), 1), round(float(-p[1] + origin[1]), 1)

    def _geometry(self, b: BinDims) -> BinGeometry:
        x, y, z = (float(v) for v in self.pose.to_camera(b, np.zeros((1, 3)))[0])
        return BinGeometry((x, y, z), b.width_mm / 1e3, b.height_mm / 1e3, b.depth_mm / 1e3)

    # ------------------------------------------------------------------ stow
    def stow_plan(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        """Placements without a sweep first (up to 3 bins x 3 placements); sweeps when few bins have one."""
        dims = ItemDims(item.width_mm, item.height_mm, item.depth_mm)
        states = [self.placement_state(b, item.depth_mm) for b in self.layout.bins if b.bin_id not in exclude_bins]
        if not states:
            return StowPlan(reason="every bin excluded")
        choice = choose_bin(states, dims)
        options: list[StowOption] = []
        for ev in choice.ranked[:3]:
            assert ev.placements is not None
            for i, p in enumerate(ev.placements.placements[:3]):
                options.append(self._stow_option(item, ev.bin_id, i, p.x_mm, p.y_mm, p.rotated))
        sweeps: list[tuple[PlannedSweep, str]] = []
        swept: list[str] = []
        if len(choice.ranked) < self.camera.sweep_below_bins:
            for ev in self._sweep_candidates(choice.rejected):
                try:
                    planned = self._plan_sweep(ev.bin_id, dims)
                except PlanningError as exc:  # the 3-D model disagrees with the bin (an item out of bounds)
                    swept.append(f"{ev.bin_id}: sweep not planned ({exc})")
                    continue
                if planned.ok:
                    sweeps.append((planned, ev.bin_id))
                else:
                    swept.append(f"{ev.bin_id}: sweep {planned.reason.value}")
            # Least predicted force first, then the shorter push; ties in bin order (sort is stable).
            sweeps.sort(key=lambda s: (round(s[0].predicted_force_n, 6), round(s[0].distance_mm, 6)))
            options.extend(self._sweep_option(item, dims, bin_id, planned) for planned, bin_id in sweeps)
        reason = "" if options else "; ".join(
            [f"{e.bin_id}: {e.reason.value}" for e in choice.rejected[:4]] + swept[:2])
        return StowPlan(options=tuple(options), reason=reason or ("no bin fits" if not options else ""))

    def _stow_option(self, item: ItemArrival, bin_id: str, index: int, x: float, y: float, rot: bool) -> StowOption:
        b = float(self.layout.bin_index(bin_id))
        at = {"bin": b, "x": round(x, 1), "y": round(y, 1)}
        steps = (
            Motion(primitive=Primitive.APPROACH, params={**at, "rotated": float(rot)}, timeout_s=8.0,
                   force_limit_n=25.0, backoff_mm=30.0),
            Motion(primitive=Primitive.EJECT_ITEM, params={**at, "rotated": float(rot)}, timeout_s=6.0,
                   force_limit_n=35.0, backoff_mm=30.0),
            Motion(primitive=Primitive.RETRACT, params={"bin": b}, timeout_s=6.0),
        )
        return StowOption(bin_id=bin_id, placement_index=index, x_mm=round(x, 1), y_mm=round(y, 1), rotated=rot,
                          steps=steps)

    def _sweep_candidates(self, rejected: tuple[BinEvaluation, ...]) -> list[BinEvaluation]:
        """Bins whose free area would fit the item if it were in one piece: fragmented ones first."""
        fragmented = [e for e in rejected if e.reason is BinReason.FRAGMENTED]
        other = [e for e in rejected if e.reason in SWEEP_REASONS and e.reason is not BinReason.FRAGMENTED]
        return (fragmented + other)[: self.camera.sweep_max_bins]

    def _plan_sweep(self, bin_id: str, dims: ItemDims) -> PlannedSweep:
        b = self.layout.bin(bin_id)
        # The simulated tool cannot tip (a horizontal blade) or hold a squeeze through the retract: plain
        # sweeps of rigid configurations only.
        return plan_sweep(self.geometry_state(b, dims.depth_mm), self.known_items(b), dims,
                          tool_force_limit_n=self.camera.tool_force_limit_n, allow_tip=False, allow_squeeze=False)

    def _sweep_option(self, item: ItemArrival, dims: ItemDims, bin_id: str, planned: PlannedSweep) -> StowOption:
        """Approach, extend the blade, sweep, eject into the freed span, retract (blade and gripper)."""
        pl, band, entry = planned.placement, planned.band_mm, planned.entry_mm
        assert pl is not None and band is not None and entry is not None
        b = self.layout.bin(bin_id)
        prims = stow_primitives(pl, planned, dims, bin_depth_mm=b.depth_mm)
        blade = next(s for s in prims if isinstance(s, ExtendBlade))
        push = next(s for s in prims if isinstance(s, Sweep))
        out = next(s for s in prims if isinstance(s, Retract))
        plain = self._stow_option(item, bin_id, 0, pl.x_mm, pl.y_mm, pl.rotated)
        approach, eject, _ = plain.steps
        bi = float(self.layout.bin_index(bin_id))
        sweep = SweepPlan(entry_x_mm=entry[0], entry_y_mm=entry[1], direction=planned.direction,
                          distance_mm=planned.distance_mm, predicted_force_n=planned.predicted_force_n,
                          force_limit_n=planned.force_limit_n, tip=planned.tip)
        steps = (
            approach,
            Motion(primitive=Primitive.EXTEND_BLADE, params={"bin": bi}, timeout_s=max(blade.timeout_s, 6.0),
                   force_limit_n=blade.force_limit_n, backoff_mm=30.0),
            Motion(primitive=Primitive.SWEEP,
                   params={"bin": bi, "x": sweep.entry_x_mm, "direction": float(sweep.direction),
                           "distance": sweep.distance_mm, "y_lo": band[0], "y_hi": band[1]},
                   timeout_s=max(push.timeout_s, 6.0), force_limit_n=sweep.force_limit_n, backoff_mm=10.0),
            eject,
            Motion(primitive=Primitive.RETRACT, params={"bin": bi}, timeout_s=max(out.timeout_s, 6.0),
                   force_limit_n=out.force_limit_n),
        )
        return plain.model_copy(update={"sweep": sweep, "steps": steps})

    # ------------------------------------------------------------------ pick
    def _pick_plan(self, order: PickOrder, b: BinDims, ranked: CandidateResult) -> PickPlan:
        """The best four suction candidates as approach, attach, extract, place; the cup aims at the order's item."""
        label = int(order.item_id)
        bi = float(self.layout.bin_index(order.bin_id))
        candidates = []
        for i, c in enumerate(ranked.candidates[:4]):
            cx, cy = self.bin_point(b, c.point)
            at = {"bin": bi, "item": float(label), "x": cx, "y": cy}
            area = round(c.patch.area * 1e6, 1)
            steps = (
                Motion(primitive=Primitive.APPROACH, params=at, timeout_s=8.0, force_limit_n=20.0, backoff_mm=20.0),
                Motion(primitive=Primitive.ATTACH, params={**at, "area_mm2": area}, timeout_s=1.5, vacuum_kpa=-40.0,
                       force_limit_n=20.0),
                Motion(primitive=Primitive.EXTRACT, params=at, timeout_s=6.0, force_limit_n=40.0, vacuum_kpa=-40.0,
                       max_scene_change=0.03, backoff_mm=10.0),
                Motion(primitive=Primitive.PLACE, params={}, timeout_s=6.0),
            )
            clearance = round(min(c.clearance, 1.0) * 1e3, 1)  # an unobstructed path reads 1 m
            candidates.append(PickCandidate(index=i, clearance_mm=clearance, area_mm2=area, steps=steps))
        reason = "" if candidates else f"no suction candidate: {ranked.reason.value}"
        return PickPlan(candidates=tuple(candidates), reason=reason)
