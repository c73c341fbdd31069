"""The oracle: perception of the simulated cell from its world's labels (for ablation), and the sim's camera.

`SimScene` renders the world's bins as the EOAT depth camera sees them (with noise): the sim's 10 Hz frames and
the oracle's. `WorldPerception` plans like every perception (`planning_perception.PlanningPerception`) on frames
rendered from `SimCell`'s world, but takes segments from the renderer's labels and sweeps from the world's boxes
(`cellctl sim --perception oracle`); `learned_perception.LearnedPerception` perceives from frames alone.
`SimPod` is the simulated cell's pod as a `PodLayout`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from drivers.camera import Intrinsics
from drivers.sim.camera import render
from drivers.sim.cell import SimCell
from drivers.sim.world import Bin
from drivers.sim.world_render import BAND, ITEM, CameraPose, scene_boxes
from perception.cloud import depth_to_points, segments_from_labels
from perception.eligibility import classify
from perception.occupancy import FrontFaceMap, front_face_map
from perception.patches import find_patches
from perception.sdf import bin_sdf
from planning.bins import BinState
from planning.suction import rank_suction_candidates
from planning.sweep import KnownItem
from statecharts.workcell import (
    Eligibility,
    EligibilityClass,
    ItemArrival,
    PickOrder,
    PickPlan,
    StowOption,
    Verification,
)

from .planning_perception import SWEEP_REASONS, CameraConfig, PlanningPerception
from .pod_layout import BinDims

__all__ = ["SWEEP_REASONS", "SimCameraConfig", "SimPod", "SimScene", "WorldPerception", "scene_of"]

SimCameraConfig = CameraConfig  # the simulated cell's camera and planner settings


class SimPod:
    """The simulated cell's pod (whichever is presented now) as a `PodLayout`: its bins are the world's."""

    def __init__(self, cell: SimCell) -> None:
        self.cell = cell

    @property
    def pod_id(self) -> str:
        return self.cell.pod.pod_id

    @property
    def bins(self) -> Sequence[Bin]:
        return self.cell.pod.bins

    def bin(self, bin_id: str) -> Bin:
        return self.cell.pod.bin(bin_id)

    def bin_index(self, bin_id: str) -> int:
        return self.cell.bin_index(bin_id)

    def bin_at(self, index: float) -> Bin:
        return self.cell.bin(index)


class SimScene:
    """The world's bins rendered as the EOAT depth camera sees them; one noise stream (from the cell's seed) for
    every simulated sensor."""

    def __init__(self, cell: SimCell, camera: CameraConfig | None = None) -> None:
        self.cell = cell
        self.camera = camera or CameraConfig()
        self.k = Intrinsics.from_fov(self.camera.width, self.camera.height, self.camera.hfov_deg)
        self.pose = CameraPose(standoff_mm=self.camera.standoff_mm)
        self.rng = np.random.default_rng([cell.seed, 7])  # sensor noise: apart from the world's draws

    def render(self, b: Bin, *, band: bool) -> tuple[np.ndarray, np.ndarray]:
        boxes = [bx for bx in scene_boxes(b, self.pose) if band or (bx.label & 3) != BAND]
        depth, labels = render(boxes, self.k)
        instance = np.where((labels & 3) == ITEM, labels >> 2, 0).astype(np.int32)
        return depth, instance

    def noisy(self, depth: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal(depth.shape, dtype=np.float32)
        return depth + noise * np.float32(self.camera.noise_k) * np.nan_to_num(depth) ** 2


class WorldPerception(PlanningPerception):
    """Renders the world's bins and runs perception and planning on the frames (synchronous, CPU-bound).

    The oracle: segments come from the renderer's labels (`cellctl sim --perception oracle`, for ablation).
    """

    kind = "oracle"

    def __init__(self, cell: SimCell, camera: CameraConfig | None = None) -> None:
        super().__init__(SimPod(cell), camera)
        self.cell = cell
        self.scene = SimScene(cell, self.camera)
        self.rng = self.scene.rng
        self._maps: dict[str, tuple[int, FrontFaceMap]] = {}

    def render(self, b: Bin, *, band: bool) -> tuple[np.ndarray, np.ndarray]:
        return self.scene.render(b, band=band)

    def noisy(self, depth: np.ndarray) -> np.ndarray:
        return self.scene.noisy(depth)

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

    def _world(self, b: BinDims) -> Bin:
        return b if isinstance(b, Bin) else self.cell.pod.bin(b.bin_id)

    def placement_state(self, b: BinDims, depth_mm: float) -> BinState:
        """The bin's state for the placement search: its front-face map (re-perceived when the bin changed)."""
        fmap = self._face_map(self._world(b))
        return BinState(b.bin_id, fmap.occupied(depth_mm / 1e3), fmap.free_depth * 1e3, self.camera.cell_m * 1e3,
                        b.width_mm, b.height_mm, b.depth_mm)

    def geometry_state(self, bd: BinDims, depth_mm: float) -> BinState:
        """The bin's front-face state from its items' boxes (the stow tower's 3-D model, not the EOAT view).

        A cell's free depth is the nearest item face behind any part of it. From the single EOAT depth view
        the gaps between deep items are unobserved and read as occupied, which hides what a sweep could merge.
        """
        b = self._world(bd)
        cell = self.camera.cell_m * 1e3
        rows, cols = math.ceil(b.height_mm / cell - 1e-9), math.ceil(b.width_mm / cell - 1e-9)
        fd = np.full((rows, cols), b.depth_mm)
        for p in b.items:
            c0, c1 = max(0, math.floor(p.lo[0] / cell + 1e-6)), min(cols, math.ceil(p.hi[0] / cell - 1e-6))
            r0, r1 = max(0, math.floor(p.lo[1] / cell + 1e-6)), min(rows, math.ceil(p.hi[1] / cell - 1e-6))
            fd[r0:r1, c0:c1] = np.minimum(fd[r0:r1, c0:c1], max(0.0, p.lo[2]))
        return BinState(b.bin_id, fd < depth_mm, fd, cell, b.width_mm, b.height_mm, b.depth_mm)

    def known_items(self, bd: BinDims) -> list[KnownItem]:
        """The bin's items as the planner knows them (the manifest's catalogue data, the 3-D model's boxes)."""
        b = self._world(bd)
        out = []
        for p in b.items:
            (x, y, z), (w, h, d) = p.lo, p.item.size_mm
            out.append(KnownItem(p.item_id, max(0.0, x), max(0.0, y), w, h, d, p.item.mass_kg, p.item.stiffness,
                                 z_mm=max(0.0, z), upright=p.leaning))
        return out

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


def scene_of(perception: PlanningPerception, cell: SimCell) -> SimScene:
    """The sim camera beside `perception`: the oracle's own (one noise stream, as before), else a new one."""
    return perception.scene if isinstance(perception, WorldPerception) else SimScene(cell, perception.camera)
