"""The pick decision from one camera frame with the learned models: which segment is the ordered product, may it
be picked, and where the cup goes (issue 13: perception from frames alone).

    frame (RGB + depth) -> pick model (instances, a status each) -> embeddings of the item segments ->
    match against the product's reference embeddings -> the target's status -> suction candidates on its
    points, ranked by clearance in the bin's signed-distance field

Nothing here reads a label the renderer made: the target is the segment most like the order's references, and
only when its similarity reaches the embedding model's match threshold (otherwise `not_recognised`). Segments the
pick model calls not-an-item (the band held down by the hook) are left out of the SDF: the band is not an obstacle
while it is held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from perception.cloud import Segment, depth_to_points, segments_from_labels
from perception.learned.embedding import Embedder, Match
from perception.learned.pick_model import PickModel, PickSegmentation
from perception.occupancy import BinGeometry
from perception.patches import find_patches
from perception.sdf import SignedDistanceField, bin_sdf
from perception.unreturned import fill_from_instances
from planning.suction import CandidateReason, CandidateResult, Rejection, rank_suction_candidates

NOT_RECOGNISED = "not_recognised"
MIN_TARGET_POINTS = 10
EDGE_PX = 3  # one cell of the models' mask grid at the 320 x 240 frame
SIZE_SLACK, SIZE_MARGIN_M = 1.2, 0.01  # a segment may look this much larger than the product (noise, mask edge)
MEDIAN_PX = 5  # the target's depth is median-filtered over this window (its own pixels only)
SDF_RESOLUTION_M = 0.01
CUP_RADIUS_M = 0.015  # planning.suction's default cup


@dataclass(frozen=True, slots=True)
class PickModels:
    """The two learned models a pick decision runs."""

    pick: PickModel
    embedder: Embedder


@dataclass(frozen=True, slots=True, eq=False)
class Identification:
    """The frame's segments and which of them is the ordered product (`label` None: not recognised)."""

    segmentation: PickSegmentation
    match: Match
    status: str  # the target's status (perception.eligibility.KINDS), or NOT_RECOGNISED

    @property
    def label(self) -> int | None:
        return self.match.label

    @property
    def detail(self) -> str:
        m = self.match
        if m.label is None:
            return (f"no segment matches the product (best similarity {m.score:.2f} below {m.threshold:.2f}, "
                    f"{len(m.scores)} item segments)")
        inst = self.segmentation.instances[m.label]
        return (f"segment {m.label} (similarity {m.score:.2f} >= {m.threshold:.2f}), status {inst.status} "
                f"(p={max(inst.status_probs):.2f})")


@dataclass(frozen=True, slots=True, eq=False)
class PickDecision:
    """An identification and, for a free target, its ranked suction candidates."""

    identification: Identification
    candidates: CandidateResult | None  # None: no target to plan on (not recognised, or too few points)
    reason: str  # "" when there are candidates


def identify(models: PickModels, rgb: np.ndarray, depth: np.ndarray, references: np.ndarray, *,
             intrinsics: object | None = None, product_mm: tuple[float, float, float] | None = None,
             ) -> Identification:
    """Segment the frame and find the ordered product among its item segments (not the not-item ones). With the
    product's dimensions (the FC's catalogue) and the camera's intrinsics, a segment wider or taller than the
    product could be (SIZE_SLACK over its longest side) is no candidate: two items merged into one segment."""
    seg = models.pick.segment(rgb, depth)
    labels = [k for k, v in seg.instances.items() if v.status != "not_item"]
    if product_mm is not None and intrinsics is not None:
        limit = SIZE_SLACK * max(product_mm) / 1e3 + SIZE_MARGIN_M
        segs = seg.segments(depth, intrinsics)
        labels = [k for k in labels if k not in segs or _face_extent(segs[k].points) <= limit]
    items = np.where(np.isin(seg.instance, labels), seg.instance, 0).astype(np.int32)
    m = models.embedder.identify(models.embedder.embed_segments(rgb, items), references)
    status = seg.instances[m.label].status if m.label is not None else NOT_RECOGNISED
    return Identification(seg, m, status)


def _face_extent(points: np.ndarray) -> float:
    """The longer side (m) of a segment's face as the camera sees it (x and y, 2nd to 98th percentile)."""
    lo, hi = np.percentile(points[:, :2], 2, axis=0), np.percentile(points[:, :2], 98, axis=0)
    return float(np.max(hi - lo))


def plan_candidates(ident: Identification, depth: np.ndarray, intrinsics: object,
                    geometry: BinGeometry) -> PickDecision:
    """Suction candidates on the identified target's points, ranked by clearance (the bin's SDF without the
    not-item segments)."""
    if ident.label is None:
        return PickDecision(ident, None, f"{NOT_RECOGNISED}: {ident.detail}")
    seg = ident.segmentation
    smooth = median_by_label(depth, seg.instance)
    target = _target_segment(seg.instance == ident.label, smooth, intrinsics)
    if target is None:
        return PickDecision(ident, None, f"target segment {ident.label} has too few depth points")
    not_item = [k for k, v in seg.instances.items() if v.status == "not_item"]
    scene = np.where(np.isin(seg.instance, not_item), np.nan, smooth).astype(np.float32)
    # An item without returns (a dark product) is an obstacle all the same, or the cup's way through it would read
    # as clear: its holes take its instance's depth (perception.unreturned); one that returned nothing at all may
    # lie anywhere along its rays, which are blocked from the opening in (the SDF's shadow behind each point).
    items = (seg.instance > 0) & ~np.isin(seg.instance, not_item)
    scene, holes = fill_from_instances(scene, items, seg.instance)
    scene[holes] = np.float32(geometry.origin[2] + SDF_RESOLUTION_M / 2)
    sdf = bin_sdf(depth_to_points(scene, intrinsics), geometry, resolution=SDF_RESOLUTION_M)
    ranked = clear_way_in(rank_suction_candidates(target, find_patches(target.points), sdf), sdf, geometry)
    return PickDecision(ident, ranked, "" if ranked.ok else f"no suction candidate: {ranked.reason.value}")


def clear_way_in(ranked: CandidateResult, sdf: SignedDistanceField, geometry: BinGeometry,
                 cup_radius_m: float = CUP_RADIUS_M) -> CandidateResult:
    """The candidates whose straight way in, from the bin's opening to the suction point along the camera's axis
    (the pod's depth axis: the cup goes in straight), keeps the cup's radius clear. The ranking checks the
    extraction only 15 cm off the face, along its normal: an item stowed near the opening in front of a deep
    target, one the camera looks past, was met on the way in."""
    kept, rejected = [], list(ranked.rejected)
    start = cup_radius_m + 2 * sdf.resolution  # off the target's own face (planning.suction's start offset)
    for c in ranked.candidates:
        depth = float(c.point[2]) - geometry.origin[2]
        s = np.arange(start, max(start, depth) + sdf.resolution, sdf.resolution / 2)
        path = c.point[None, :] - s[:, None] * np.array([0.0, 0.0, 1.0])[None, :]
        d = sdf.query(path)
        inside = np.isfinite(d)  # off the grid: in front of the opening (free) or through a wall (the ranking's)
        if inside.any() and float(d[inside].min()) < cup_radius_m:
            rejected.append(Rejection(c.patch_index, CandidateReason.BLOCKED,
                                      f"way in blocked: clearance {float(d[inside].min()):.4f} < cup {cup_radius_m} m"))
        else:
            kept.append(c)
    if kept:
        return CandidateResult(tuple(kept), CandidateReason.OK, f"{len(kept)} candidates", tuple(rejected))
    if not ranked.candidates:
        return ranked
    return CandidateResult((), CandidateReason.BLOCKED, "every candidate's way in is blocked", tuple(rejected))


def median_within(depth: np.ndarray, mask: np.ndarray, size: int = MEDIAN_PX) -> np.ndarray:
    """`depth` with each pixel of `mask` replaced by the median of the valid `mask` pixels in the size x size window
    about it (NaN where there are none): a structured-light sensor's noise (several mm at half a metre) would
    otherwise break a flat face into patches too small for the cup. Pixels off the mask are left as they are."""
    return np.where(mask, median_by_label(depth, mask.astype(np.int8), size), depth).astype(depth.dtype, copy=False)


def median_by_label(depth: np.ndarray, labels: np.ndarray, size: int = MEDIAN_PX) -> np.ndarray:
    """`median_within` for every label of `labels` (0, the unsegmented rest, too), each on its own pixels only: no
    edge between two segments is blurred. One pass over the frame: the size x size neighbours of every pixel,
    those of another label (or without a return) as NaN, sorted (NaN last); the median is the middle of the valid."""
    r = size // 2
    h, w = depth.shape
    d = np.pad(depth.astype(np.float32), r, constant_values=np.nan)
    lab = np.pad(labels.astype(np.int64), r, constant_values=-1)  # the padding matches no label
    stack = np.empty((size * size, h, w), dtype=np.float32)
    for i, (dv, du) in enumerate((dv, du) for dv in range(size) for du in range(size)):
        stack[i] = np.where(lab[dv:dv + h, du:du + w] == labels, d[dv:dv + h, du:du + w], np.nan)
    n = np.count_nonzero(~np.isnan(stack), axis=0)
    stack.sort(axis=0)
    lo = np.take_along_axis(stack, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(stack, (n // 2)[None], 0)[0]
    out = (lo + hi) * np.float32(0.5)
    out[n == 0] = np.nan
    return out.astype(depth.dtype, copy=False)


def _target_segment(mask: np.ndarray, smooth: np.ndarray, intrinsics: object) -> Segment | None:
    """The target's points (from the depth median-filtered per segment), the mask eroded by EDGE_PX first: a mask
    from the model's half-resolution grid is uncertain at its edge (a neighbour's or the wall's pixels), the cup
    belongs on the face's interior. A segment too thin to erode keeps its whole mask."""
    for m in (ndimage.binary_erosion(mask, iterations=EDGE_PX), mask):
        seg = segments_from_labels(smooth, m.astype(np.int32), intrinsics).get(1)
        if seg is not None and seg.size >= MIN_TARGET_POINTS:
            return seg
    return None


def decide_pick(models: PickModels, rgb: np.ndarray, depth: np.ndarray, intrinsics: object,
                references: np.ndarray, geometry: BinGeometry,
                product_mm: tuple[float, float, float] | None = None) -> PickDecision:
    """The whole pick decision on one frame: identify, then (whatever the status) rank suction candidates."""
    ident = identify(models, rgb, depth, references, intrinsics=intrinsics, product_mm=product_mm)
    return plan_candidates(ident, depth, intrinsics, geometry)
