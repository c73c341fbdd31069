"""Perception and planning of the simulated cell, on depth frames rendered from its world.

The stand-in for the EOAT camera plus the perception stack: frames are rendered from `SimCell`'s world
(with noise), then the real perception (`perception.*`) and planning (`planning.*`) run on them. Used by
the in-process simulated workcell (`cellctl sim`) and by the driver workcell on the built-in simulated
cell (`cellctl run`). Plans carry bin-relative targets; `drivers.pod_frame` maps them onto the pod face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from drivers.camera import Intrinsics
from drivers.sim.camera import render
from drivers.sim.cell import SimCell
from drivers.sim.world import Bin
from drivers.sim.world_render import BAND, ITEM, CameraPose, scene_boxes
from perception.cloud import depth_to_points, segments_from_labels
from perception.eligibility import classify
from perception.occupancy import BinGeometry, FrontFaceMap, front_face_map
from perception.patches import find_patches
from perception.sdf import bin_sdf
from planning.bins import BinEvaluation, BinReason, BinState, ItemDims, choose_bin
from planning.checks import PlanningError
from planning.stow import ExtendBlade, Retract, Sweep, stow_primitives
from planning.suction import CandidateResult, rank_suction_candidates
from planning.sweep import KnownItem, plan_sweep
from planning.sweep import SweepPlan as PlannedSweep
from statecharts.workcell import (
    Eligibility,
    EligibilityClass,
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

# Bins rejected for these reasons have the free area but not in one piece: a sweep may merge it.
SWEEP_REASONS = (BinReason.FRAGMENTED, BinReason.NO_CONTIGUOUS_SPACE)


@dataclass(frozen=True)
class SimCameraConfig:
    width: int = 320
    height: int = 240
    hfov_deg: float = 70.0
    standoff_mm: float = 350.0
    noise_k: float = 0.0025  # depth noise sigma = noise_k * z^2 (m)
    cell_m: float = 0.01  # front-face map resolution
    sweep_below_bins: int = 2  # plan sweeps when fewer bins than this have a placement without one
    sweep_max_bins: int = 3  # at most this many bins get a sweep planned per stow plan
    tool_force_limit_n: float = 40.0  # the stow tool's rating: no sweep is planned to need more


class WorldPerception:
    """Renders the world's bins and runs perception and planning on the frames (synchronous, CPU-bound).

    The oracle: segments come from the renderer's labels (`cellctl sim --perception oracle`, for ablation);
    `learned_perception.LearnedPerception` perceives from frames alone.
    """

    kind = "oracle"

    def __init__(self, cell: SimCell, camera: SimCameraConfig | None = None) -> None:
        self.cell = cell
        self.camera = camera or SimCameraConfig()
        self.k = Intrinsics.from_fov(self.camera.width, self.camera.height, self.camera.hfov_deg)
        self.pose = CameraPose(standoff_mm=self.camera.standoff_mm)
        self.rng = np.random.default_rng([cell.seed, 7])  # sensor noise: apart from the world's draws
        self._maps: dict[str, tuple[int, FrontFaceMap]] = {}

    def bin_point(self, b: Bin, camera_point_m: np.ndarray) -> tuple[float, float]:
        """A camera-frame point (m) -> bin-relative face coordinates (x, y) in mm."""
        origin = self.pose.origin_mm(b)
        p = np.asarray(camera_point_m, dtype=np.float64) * 1000.0
        return round(float(p[0] + origin[0]), 1), round(float(-p[1] + origin[1]), 1)

    def render(self, b: Bin, *, band: bool) -> tuple[np.ndarray, np.ndarray]:
        boxes = [bx for bx in scene_boxes(b, self.pose) if band or (bx.label & 3) != BAND]
        depth, labels = render(boxes, self.k)
        instance = np.where((labels & 3) == ITEM, labels >> 2, 0).astype(np.int32)
        return depth, instance

    def noisy(self, depth: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal(depth.shape, dtype=np.float32)
        return depth + noise * np.float32(self.camera.noise_k) * np.nan_to_num(depth) ** 2

    def _geometry(self, b: Bin) -> BinGeometry:
        x, y, z = (float(v) for v in self.pose.to_camera(b, np.zeros((1, 3)))[0])
        return BinGeometry((x, y, z), b.width_mm / 1e3, b.height_mm / 1e3, b.depth_mm / 1e3)

    def _face_map(self, b: Bin) -> FrontFaceMap:
        """The bin's front-face map, re-perceived only when the bin changed (the band held down by the hook)."""
        version = self.cell.versions[b.bin_id]
        cached = self._maps.get(b.bin_id)
        if cached is not None and cached[0] == version:
            return cached[1]
        depth = self.noisy(self.render(b, band=False)[0])
        fmap = front_face_map(depth_to_points(depth, self.k), self._geometry(b), resolution=self.camera.cell_m)
        self._maps[b.bin_id] = (version, fmap)
        return fmap

    def motion_result(self, motion: Motion, result: MotionResult) -> None:
        """What a finished motion tells perception: nothing here (the world's boxes say it all)."""

    def stow_plan(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        """Placements without a sweep first (up to 3 bins x 3 placements); sweeps when few bins have one."""
        dims = ItemDims(item.width_mm, item.height_mm, item.depth_mm)
        states = []
        for b in self.cell.pod.bins:
            if b.bin_id in exclude_bins:
                continue
            states.append(self.placement_state(b, item.depth_mm))
        if not states:
            plan = StowPlan(reason="every bin excluded")
            return plan
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
        plan = StowPlan(options=tuple(options), reason=reason or ("no bin fits" if not options else ""))
        return plan

    def _stow_option(self, item: ItemArrival, bin_id: str, index: int, x: float, y: float, rot: bool) -> StowOption:
        b = float(self.cell.bin_index(bin_id))
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

    def placement_state(self, b: Bin, depth_mm: float) -> BinState:
        """The bin's state for the placement search: its front-face map (re-perceived when the bin changed)."""
        fmap = self._face_map(b)
        return BinState(b.bin_id, fmap.occupied(depth_mm / 1e3), fmap.free_depth * 1e3, self.camera.cell_m * 1e3,
                        b.width_mm, b.height_mm, b.depth_mm)

    def _sweep_candidates(self, rejected: tuple[BinEvaluation, ...]) -> list[BinEvaluation]:
        """Bins whose free area would fit the item if it were in one piece: fragmented ones first."""
        fragmented = [e for e in rejected if e.reason is BinReason.FRAGMENTED]
        other = [e for e in rejected if e.reason in SWEEP_REASONS and e.reason is not BinReason.FRAGMENTED]
        return (fragmented + other)[: self.camera.sweep_max_bins]

    def geometry_state(self, b: Bin, depth_mm: float) -> BinState:
        """The bin's front-face state from its items' boxes (the stow tower's 3-D model, not the EOAT view).

        A cell's free depth is the nearest item face behind any part of it. From the single EOAT depth view
        the gaps between deep items are unobserved and read as occupied, which hides what a sweep could merge.
        """
        cell = self.camera.cell_m * 1e3
        rows, cols = math.ceil(b.height_mm / cell - 1e-9), math.ceil(b.width_mm / cell - 1e-9)
        fd = np.full((rows, cols), b.depth_mm)
        for p in b.items:
            c0, c1 = max(0, math.floor(p.lo[0] / cell + 1e-6)), min(cols, math.ceil(p.hi[0] / cell - 1e-6))
            r0, r1 = max(0, math.floor(p.lo[1] / cell + 1e-6)), min(rows, math.ceil(p.hi[1] / cell - 1e-6))
            fd[r0:r1, c0:c1] = np.minimum(fd[r0:r1, c0:c1], max(0.0, p.lo[2]))
        return BinState(b.bin_id, fd < depth_mm, fd, cell, b.width_mm, b.height_mm, b.depth_mm)

    def known_items(self, b: Bin) -> list[KnownItem]:
        """The bin's items as the planner knows them (the manifest's catalogue data, the 3-D model's boxes)."""
        out = []
        for p in b.items:
            (x, y, z), (w, h, d) = p.lo, p.item.size_mm
            out.append(KnownItem(p.item_id, max(0.0, x), max(0.0, y), w, h, d, p.item.mass_kg, p.item.stiffness,
                                 z_mm=max(0.0, z), upright=p.leaning))
        return out

    def _plan_sweep(self, bin_id: str, dims: ItemDims) -> PlannedSweep:
        b = self.cell.pod.bin(bin_id)
        # The simulated tool cannot tip (a horizontal blade) or hold a squeeze through the retract: plain
        # sweeps of rigid configurations only.
        return plan_sweep(self.geometry_state(b, dims.depth_mm), self.known_items(b), dims,
                          tool_force_limit_n=self.camera.tool_force_limit_n, allow_tip=False, allow_squeeze=False)

    def _sweep_option(self, item: ItemArrival, dims: ItemDims, bin_id: str, planned: PlannedSweep) -> StowOption:
        """Approach, extend the blade, sweep, eject into the freed span, retract (blade and gripper)."""
        pl, band, entry = planned.placement, planned.band_mm, planned.entry_mm
        assert pl is not None and band is not None and entry is not None
        b = self.cell.pod.bin(bin_id)
        prims = stow_primitives(pl, planned, dims, bin_depth_mm=b.depth_mm)
        blade = next(s for s in prims if isinstance(s, ExtendBlade))
        push = next(s for s in prims if isinstance(s, Sweep))
        out = next(s for s in prims if isinstance(s, Retract))
        plain = self._stow_option(item, bin_id, 0, pl.x_mm, pl.y_mm, pl.rotated)
        approach, eject, _ = plain.steps
        bi = float(self.cell.bin_index(bin_id))
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

    def verify(self, item: ItemArrival, option: StowOption) -> Verification:
        b = self.cell.pod.bin(option.bin_id)
        _, instance = self.render(b, band=False)
        seen = int(np.count_nonzero(instance == int(item.item_id)))
        ok = seen >= 20
        v = Verification(ok=ok, detail=f"{seen} pixels of item {item.item_id} in {option.bin_id}")
        return v

    def eligibility(self, order: PickOrder) -> Eligibility:
        b = self.cell.pod.bin(order.bin_id)
        depth, instance = self.render(b, band=True)
        label = int(order.item_id)
        if not np.any(instance == label):
            e = Eligibility(eligible=False, cls=EligibilityClass.NOT_FOUND, detail=f"item {label} not visible")
        else:
            got = classify(self.noisy(depth), instance, self.k).get(label)
            if got is None:
                e = Eligibility(eligible=False, cls=EligibilityClass.NOT_FOUND, detail=f"item {label} not segmented")
            else:
                cls = EligibilityClass(got.kind)
                e = Eligibility(eligible=cls is EligibilityClass.FREE, cls=cls, detail=got.reason)
        return e

    def pick_plan(self, order: PickOrder) -> PickPlan:
        b = self.cell.pod.bin(order.bin_id)
        depth, instance = self.render(b, band=False)
        depth = self.noisy(depth)
        label = int(order.item_id)
        target = segments_from_labels(depth, instance, self.k).get(label)
        if target is None or len(target.points) < 10:
            plan = PickPlan(reason=f"target {label} not found in {order.bin_id}")
            return plan
        sdf = bin_sdf(depth_to_points(depth, self.k), self._geometry(b), resolution=0.01)
        return self._pick_plan(order, b, rank_suction_candidates(target, find_patches(target.points), sdf))

    def _pick_plan(self, order: PickOrder, b: Bin, ranked: CandidateResult) -> PickPlan:
        """The best four suction candidates as approach, attach, extract, place; the cup aims at the order's item."""
        label = int(order.item_id)
        bi = float(self.cell.bin_index(order.bin_id))
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
            candidates.append(PickCandidate(index=i, clearance_mm=clearance, area_mm2=area,
                                            steps=steps))
        reason = "" if candidates else f"no suction candidate: {ranked.reason.value}"
        plan = PickPlan(candidates=tuple(candidates), reason=reason)
        return plan
