"""Perception of the cell from camera frames alone: the learned models on what the EOAT camera gives.

`LearnedPerception` plans like every perception (`planning_perception.PlanningPerception`: the same placement,
sweep and suction planners, the same primitives). It knows the pod as a `PodLayout` (bin ids and dimensions: the
simulated cell's, or the PLC's), the products by the FC's reference images (`ReferenceSource`), and everything
about a bin's contents from a frame of its `BinCamera` (depth and colour, no labels; intrinsics the frame's own):

- stow: the stow segmenter classes every pixel; the band's pixels (and a margin round them) are taken out of the
  depth (they hide what is behind); item pixels without a return (dark products) take their instance's near depth,
  else that of the returns just under them, what carries the item (`perception.unreturned`); the front-face map is
  built from that and the cells the band hid take the least free depth of their observed neighbours
  (`perception.occupancy.fill_unobserved`). Sweeps plan on that map and on the items the segmenter separates,
  rigid, with the mass of the cell's own stow record where a segment is an item it stowed (otherwise 600 kg/m3:
  conservative). A plan captures every bin once (nothing is cached on the world's change counter).
- verify: a new frame of the bin, compared with the plan's: the item's face must be mostly new item pixels (item
  now and not before, nearer than before, a return lost or one gained at the face's depth) at the planned height
  or lower (an item settles onto what truly supports it), with its front where the belts stopped it.
- contacts: an eject the force reflex stopped caps that footprint's free depth until the bin's contents move.
- pick: `planning.pick_decision`: the pick model's segments and statuses, the embedding matched against the order's
  reference images (the FC's catalogue), `not_recognised` below the match threshold, suction candidates on the
  matched segment. The first plan of an order uses the frame its eligibility was checked on (the cell has not
  touched the bin in between); a replan after a failed attempt captures a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from drivers.camera import DepthFrame, Intrinsics
from perception.cloud import depth_to_points
from perception.contacts import Contact, ContactMemory
from perception.learned.segmenter import ITEM, StowSegmentation, StowSegmenter
from perception.occupancy import FrontFaceMap, fill_unobserved, front_face_map
from perception.unreturned import fill_from_below, fill_from_instances, hole_rays
from planning.bins import BinState
from planning.pick_decision import NOT_RECOGNISED, Identification, PickModels, identify, plan_candidates
from planning.sweep import KnownItem
from statecharts.workcell import (
    Eligibility,
    EligibilityClass,
    ItemArrival,
    Motion,
    MotionOutcome,
    MotionResult,
    PickOrder,
    PickPlan,
    Primitive,
    StowOption,
    StowPlan,
    Verification,
)

from .planning_perception import CameraConfig, PlanningPerception
from .pod_layout import BinDims, PodLayout

UNKNOWN_DENSITY_KG_M3 = 600.0  # an item the cell did not stow: heavier than most, for the sweep's force
VERIFY_FRACTION = 0.5  # of the placed face's pixels (band excluded) that must be new item pixels
VERIFY_STEP_MM = 5.0  # verify looks for the item at the planned height and every this lower
VERIFY_DEPTH_STEP_MM = 10.0  # and for its front face at every this depth in front of the back wall
FACE_TOLERANCE_M = 0.02  # a pixel that gained a return is new where its depth is this near the face's
NEW_SURFACE_M = 0.02  # an item pixel is new where no item was, or where it is this much nearer than before
MIN_SEGMENT_POINTS = 20
BAND_MARGIN_PX = 2  # the band's edges, which the segmenter may miss, come out of the depth too
CONTACT_MARGIN_MM = 5.0  # a blocked eject leaves at most the item's depth less this free over its footprint


class BinCamera(Protocol):
    """The EOAT camera facing a bin: one frame (depth and colour) as the camera gives it."""

    def capture(self, b: BinDims) -> DepthFrame: ...
    def moved(self, motion: Motion) -> None: ...  # a motion ended (a camera that keeps views drops that bin's)


class ReferenceSource(Protocol):
    """The FC's product data: (RGB, mask or None) per reference view of a product, and its dimensions (mm)."""

    def references(self, product_id: str) -> Sequence[tuple[np.ndarray, np.ndarray | None]]: ...

    def size_mm(self, product_id: str) -> tuple[float, float, float] | None: ...


class NoCatalogue:
    """A `ReferenceSource` that holds no product (a stow run identifies nothing)."""

    def references(self, product_id: str) -> Sequence[tuple[np.ndarray, np.ndarray | None]]:
        return ()

    def size_mm(self, product_id: str) -> tuple[float, float, float] | None:
        return None


@dataclass(frozen=True, slots=True)
class LearnedModels:
    segmenter: StowSegmenter
    pick: PickModels


@dataclass(slots=True)
class _StowView:
    frame: DepthFrame
    seg: StowSegmentation
    face: FrontFaceMap | None = None  # made on first use


class LearnedPerception(PlanningPerception):
    """`Perception` from frames: `camera` gives them, `models` read them, `references` name the products, `layout`
    is the presented pod (bin ids and dimensions). Nothing here reads the simulated world: the simulated cell
    builds one with `sim_frames.sim_learned_perception`, a real cell over the PLC's pod and a real camera."""

    kind = "learned"

    def __init__(self, layout: PodLayout, models: LearnedModels, camera: BinCamera, references: ReferenceSource,
                 config: CameraConfig | None = None) -> None:
        super().__init__(layout, config)
        self.models = models
        self.eoat = camera
        self.refs = references
        self._ref_vectors: dict[str, np.ndarray] = {}
        self._records: dict[str, list[KnownItem]] = {}  # the cell's own stows, by pod and bin
        self._planning = False
        self._checked: tuple[str, tuple[DepthFrame, Identification]] | None = None
        self._views: dict[str, _StowView] = {}
        self._before: dict[str, _StowView] = {}  # each bin's view at the last stow plan, for verify
        self.contacts = ContactMemory()  # blocked ejects: where the camera's view was too free
        self._stowing: ItemArrival | None = None  # the item of the last stow plan (the one on the belts)

    # ------------------------------------------------------------------ frames
    def _frame(self, b: BinDims) -> tuple[DepthFrame, np.ndarray]:
        frame = self.eoat.capture(b)
        if frame.color is None:
            raise ValueError("the EOAT camera gave no colour image: learned perception needs RGB and depth")
        return frame, frame.color

    def _stow_view(self, b: BinDims) -> _StowView:
        """The bin's frame and its segmentation: one capture per bin and stow plan (a new one outside a plan)."""
        view = self._views.get(b.bin_id)
        if view is None:
            frame, rgb = self._frame(b)
            view = _StowView(frame, self.models.segmenter.segment(rgb, frame.depth))
            if self._planning:
                self._views[b.bin_id] = self._before[b.bin_id] = view
        return view

    def _face_map(self, b: BinDims) -> FrontFaceMap:
        """The bin's front-face map from its view: the band (and a margin round it) out of the depth, item holes
        given their instance's depth or that of what carries them (and points along their rays behind it), the
        cells the band hid filled, capped where an eject met something (`perception.contacts`)."""
        view = self._stow_view(b)
        if view.face is None:
            seg, geo = view.seg, self._geometry(b)
            band = ndimage.binary_dilation(seg.band_mask, iterations=BAND_MARGIN_PX)
            measured = np.where(band, np.nan, view.frame.depth).astype(np.float32)
            item = seg.classes == ITEM
            depth, holes = fill_from_instances(measured, item, seg.instance)
            depth, _ = fill_from_below(depth, holes)
            filled = item & ~(np.isfinite(measured) & (measured > 0)) & np.isfinite(depth)
            points = np.concatenate([depth_to_points(depth, view.frame.intrinsics),
                                     hole_rays(depth, filled, view.frame.intrinsics, reach_m=b.depth_mm / 1e3,
                                               step_m=self.camera.cell_m)])
            face = fill_unobserved(front_face_map(points, geo, resolution=self.camera.cell_m))
            view.face = self.contacts.cap(self._bin_key(b.bin_id), face)
        return view.face

    def motion_result(self, motion: Motion, result: MotionResult) -> None:
        """An eject the force reflex stopped leaves a contact (the item's footprint has less free depth than the
        item is deep); a sweep or an extraction moves the bin's contents, and its contacts are forgotten."""
        self.eoat.moved(motion)
        if "bin" not in motion.params:
            return
        b = self.layout.bin_at(motion.params["bin"])
        key = self._bin_key(b.bin_id)
        if motion.primitive in (Primitive.SWEEP, Primitive.EXTRACT) and result.outcome is not MotionOutcome.UNAVAILABLE:
            self.contacts.forget(key)
        item = self._stowing
        if motion.primitive is Primitive.EJECT_ITEM and result.outcome is MotionOutcome.FORCE_LIMIT and item:
            rotated = motion.params.get("rotated", 0.0) >= 0.5
            w, h = (item.height_mm, item.width_mm) if rotated else (item.width_mm, item.height_mm)
            self.contacts.record(key, Contact(motion.params["x"], motion.params["y"], w, h,
                                              item.depth_mm - CONTACT_MARGIN_MM))

    # ------------------------------------------------------------------ stow
    def stow_plan(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        self._planning, self._views, self._stowing = True, {}, item
        try:
            return super().stow_plan(item, exclude_bins)
        finally:
            self._planning, self._views = False, {}

    def geometry_state(self, b: BinDims, depth_mm: float) -> BinState:
        """The bin's state as the cell sees it: the front-face map of its frame (mm)."""
        fmap = self._face_map(b)
        fd = np.minimum(fmap.free_depth.astype(np.float64) * 1e3, b.depth_mm)  # float32 m: 0.3 is 300.00001 mm
        return BinState(b.bin_id, fd < depth_mm, fd, self.camera.cell_m * 1e3, b.width_mm, b.height_mm,
                        b.depth_mm)

    def placement_state(self, b: BinDims, depth_mm: float) -> BinState:
        """Placements search the same state as sweeps: the frame's front-face map."""
        return self.geometry_state(b, depth_mm)

    def known_items(self, b: BinDims) -> list[KnownItem]:
        """The segmenter's items as boxes in the bin frame (their front faces; each reaching the back wall), with
        the mass of the cell's stow record that overlaps it most, or a conservative estimate."""
        view = self._stow_view(b)
        frame, seg = view.frame, view.seg
        geo = self._geometry(b)
        out = []
        for label, s in sorted(seg.segments(frame.depth, frame.intrinsics, min_points=MIN_SEGMENT_POINTS).items()):
            p = geo.to_bin(s.points) * 1e3
            lo, hi = np.percentile(p, 2, axis=0), np.percentile(p, 98, axis=0)
            x0, y0 = max(0.0, float(lo[0])), max(0.0, float(lo[1]))
            x1, y1 = min(b.width_mm, float(hi[0])), min(b.height_mm, float(hi[1]))
            z = min(max(0.0, float(lo[2])), b.depth_mm - 1.0)
            if x1 - x0 < 1.0 or y1 - y0 < 1.0:
                continue
            w, h, d = x1 - x0, y1 - y0, b.depth_mm - z
            rec = self._record_at(b.bin_id, x0, y0, w, h)
            mass = rec.mass_kg if rec is not None else UNKNOWN_DENSITY_KG_M3 * w * h * d * 1e-9
            out.append(KnownItem(label, x0, y0, w, h, d, max(mass, 0.01), 1.0, z_mm=z))
        return out

    def _bin_key(self, bin_id: str) -> str:
        return f"{self.layout.pod_id}/{bin_id}"  # the FC names the pod at the station

    def _record_at(self, bin_id: str, x: float, y: float, w: float, h: float) -> KnownItem | None:
        best, best_area = None, 0.0
        for r in self._records.get(self._bin_key(bin_id), []):
            ix = min(x + w, r.x_mm + r.width_mm) - max(x, r.x_mm)
            iy = min(y + h, r.y_mm + r.height_mm) - max(y, r.y_mm)
            area = max(0.0, ix) * max(0.0, iy)
            if area > best_area and area >= 0.5 * min(w * h, r.width_mm * r.height_mm):
                best, best_area = r, area
        return best

    def verify(self, item: ItemArrival, option: StowOption) -> Verification:
        """The item is where it was put, or lower: it settles onto what supports it when the cell saw the space
        below as occupied. Each height from the planned one down to the floor, and each depth its face may have
        stopped at, is tried; the face there must be mostly new pixels against the plan's frame: an item pixel
        where there was none, any pixel whose surface came NEW_SURFACE_M nearer or lost its return, or one that
        gained a return at the face's depth (within FACE_TOLERANCE_M: an item in front of a dark one)."""
        b = self.layout.bin(option.bin_id)
        w, h = (item.height_mm, item.width_mm) if option.rotated else (item.width_mm, item.height_mm)
        frame, rgb = self._frame(b)
        seg = self.models.segmenter.segment(rgb, frame.depth)
        new = seg.classes == ITEM
        gained = np.zeros_like(new)
        d1 = frame.depth
        before = self._before.get(b.bin_id)
        if before is not None:
            d0 = before.frame.depth
            with np.errstate(invalid="ignore"):
                changed = (d0 - d1 > NEW_SURFACE_M) | (np.isfinite(d0) & ~np.isfinite(d1))
            new = (new & (before.seg.classes != ITEM)) | changed
            gained = ~np.isfinite(d0) & np.isfinite(d1)
        looked = ~seg.band_mask
        seen = _summed(looked)
        opening_m = self._geometry(b).origin[2]
        tables: dict[float, np.ndarray] = {}
        best = (0.0, 0, option.y_mm)
        for y in np.arange(option.y_mm, -1e-6, -VERIFY_STEP_MM):
            for z in self._stop_depths(b, option.x_mm, float(y), w, h, item.depth_mm):
                if z not in tables:
                    with np.errstate(invalid="ignore"):
                        at_face = gained & (np.abs(d1 - (opening_m + z / 1e3)) < FACE_TOLERANCE_M)
                    tables[z] = _summed((new | at_face) & looked)
                box = self._face_box(b, frame.intrinsics, option.x_mm, float(y), w, h, z)
                n = _box_sum(seen, box)
                share = _box_sum(tables[z], box) / n if n else 0.0
                if share > best[0]:
                    best = (share, n, float(y))
        share, n, y = best
        ok = n > 0 and share >= VERIFY_FRACTION
        if ok:
            self._records.setdefault(self._bin_key(b.bin_id), []).append(KnownItem(
                int(item.item_id), option.x_mm, y, w, h, item.depth_mm, item.mass_kg, 1.0))
        where = f"{option.bin_id} at y={y:.0f} mm" + (f" (put at {option.y_mm:.0f})" if y != option.y_mm else "")
        return Verification(ok=ok, detail=f"{share:.0%} of {n} pixels where item {item.item_id} lies in {where} "
                                          f"are new item pixels")

    def _stop_depths(self, b: BinDims, x: float, y: float, w: float, h: float, depth_mm: float) -> list[float]:
        """Where the belts may have stopped the item's front face (bin z, mm): at the back wall, where it met the
        nearest surface behind its footprint in the plan's front-face map, or anywhere in front of the back wall
        (every VERIFY_DEPTH_STEP_MM): that map is wrong where the camera had no return (a dark item)."""
        back = max(0.0, b.depth_mm - depth_mm)
        out = {back, *np.arange(0.0, back, VERIFY_DEPTH_STEP_MM).tolist()}
        before = self._before.get(b.bin_id)
        if before is not None and before.face is not None:
            cell = self.camera.cell_m * 1e3
            r0, c0 = int(y // cell), int(x // cell)
            r1, c1 = int(np.ceil((y + h) / cell)), int(np.ceil((x + w) / cell))
            fd = before.face.free_depth[r0:r1, c0:c1]
            if fd.size:
                out.add(max(0.0, float(fd.min()) * 1e3 - depth_mm))
        return sorted(out)

    def _face_box(self, b: BinDims, k: Intrinsics, x: float, y: float, w: float, h: float, z: float,
                  ) -> tuple[int, int, int, int]:
        """Pixel rows r0:r1 and columns c0:c1 of the middle 60 % of the rectangle (x, y, w, h) at depth z (bin
        frame, mm)."""
        mx, my = 0.2 * w, 0.2 * h
        corners = np.array([[x + mx, y + my, z], [x + w - mx, y + h - my, z]])
        uv = self.pose.project(b, corners, k)
        u0, u1 = sorted(float(v) for v in uv[:, 0])
        v0, v1 = sorted(float(v) for v in uv[:, 1])
        c0, c1 = max(0, int(np.ceil(u0))), min(k.width, int(np.floor(u1)) + 1)
        r0, r1 = max(0, int(np.ceil(v0))), min(k.height, int(np.floor(v1)) + 1)
        return r0, max(r0, r1), c0, max(c0, c1)

    # ------------------------------------------------------------------ pick
    def _references(self, product_id: str) -> np.ndarray | str | None:
        """The product's reference embeddings (kept per product), None when the FC has no image of it, why not
        when its images cannot be used (a `ReferenceSource` raises ValueError naming the file)."""
        if not product_id:
            return None
        vec = self._ref_vectors.get(product_id)
        if vec is None:
            try:
                refs = list(self.refs.references(product_id))
            except ValueError as exc:
                return f"the FC's reference images of product {product_id!r} cannot be used: {exc}"
            if not refs:
                return None
            vec = self.models.pick.embedder.embed_images([r[0] for r in refs], [r[1] for r in refs])
            self._ref_vectors[product_id] = vec
        return vec

    def _identify(self, order: PickOrder, b: BinDims) -> tuple[DepthFrame, Identification] | str:
        refs = self._references(order.product_id)
        if refs is None:
            return (f"the FC has no reference image of product {order.product_id!r}" if order.product_id
                    else "the order names no product: nothing to identify the item by")
        if isinstance(refs, str):
            return refs
        frame, rgb = self._frame(b)
        return frame, identify(self.models.pick, rgb, frame.depth, refs, intrinsics=frame.intrinsics,
                               product_mm=self.refs.size_mm(order.product_id))

    def eligibility(self, order: PickOrder) -> Eligibility:
        got = self._identify(order, self.layout.bin(order.bin_id))
        self._checked = None
        if isinstance(got, str):
            return Eligibility(eligible=False, cls=EligibilityClass.NOT_RECOGNISED, detail=got)
        self._checked = (order.order_id, got)  # the first plan of this order plans on the frame it was checked on
        ident = got[1]
        if ident.label is None:
            return Eligibility(eligible=False, cls=EligibilityClass.NOT_RECOGNISED, detail=ident.detail)
        cls = EligibilityClass(ident.status)
        return Eligibility(eligible=cls is EligibilityClass.FREE, cls=cls, detail=ident.detail)

    def pick_plan(self, order: PickOrder) -> PickPlan:
        b = self.layout.bin(order.bin_id)
        checked, self._checked = self._checked, None
        # Nothing has touched the bin since the check: plan on its frame. A replan (after a failed attempt)
        # captures a new one.
        got = checked[1] if checked is not None and checked[0] == order.order_id else self._identify(order, b)
        if isinstance(got, str):
            return PickPlan(reason=f"{NOT_RECOGNISED}: {got}")
        frame, ident = got
        decision = plan_candidates(ident, frame.depth, frame.intrinsics, self._geometry(b))
        if decision.candidates is None or not decision.candidates.ok:
            return PickPlan(reason=decision.reason)
        return self._pick_plan(order, b, decision.candidates)


def _summed(mask: np.ndarray) -> np.ndarray:
    """The summed-area table of `mask` (one row and column of zeros in front): any box's count in four reads."""
    out = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    out[1:, 1:] = mask.cumsum(0).cumsum(1)
    return out


def _box_sum(table: np.ndarray, box: tuple[int, int, int, int]) -> int:
    r0, r1, c0, c1 = box
    return int(table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0])
