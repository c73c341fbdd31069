"""Eligibility of segmented items for picking: not an item, free, below others, blocked by others.

Geometric rules over the 3-D segments of an instance image (camera frame: x right, y DOWN,
z forward, metres) and their depth order:

- "blocked": another segment lies in front of it (its front surface nearer by `z_margin_m`) and
  covers it in the front view: their x and y extents overlap by more than `overlap_tol_m`, or the
  nearer segment occludes it along a shared image boundary (its pixels border this segment's
  with smaller depth on at least `min_boundary_px` pixel pairs), so this segment continues behind it.
- "below": another segment rests on it: that segment's bottom (largest camera y) lies within
  `rest_gap_m` of this segment's top (smallest camera y) and their x and z extents overlap.
- Both true resolves to "blocked" (as `drivers.sim.world.ground_truth_eligibility` does: something
  in front of an item makes it unreachable whatever rests on it).
- "not_item": labels in `not_item_labels`, labels outside `item_labels` (when given), and segments
  too small (fewer than `min_pixels` points) or too flat (x or y extent under `min_extent_m`).

Labels with no valid pixel (hidden items) cannot be classified and are absent from the result;
label 0 (`background`) is never a segment. Everything is visible-surface geometry: an item's
hidden back and its occluded parts are inferred only through the occlusion-boundary rule above.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .cloud import Segment, segments_from_labels
from .common import CameraIntrinsics, PerceptionError, check_depth, check_positive

Kind = Literal["not_item", "free", "below", "blocked"]
KINDS: tuple[Kind, ...] = ("not_item", "free", "below", "blocked")


@dataclass(frozen=True, slots=True)
class EligibilityParams:
    """Thresholds (metres, pixels) of the classification rules; see the module docstring."""

    z_margin_m: float = 0.004
    overlap_tol_m: float = 0.003
    min_boundary_px: int = 3
    rest_gap_m: float = 0.008
    min_pixels: int = 2
    min_extent_m: float = 0.0

    def __post_init__(self) -> None:
        for name in ("z_margin_m", "overlap_tol_m", "rest_gap_m", "min_extent_m"):
            check_positive(getattr(self, name), f"params.{name}", allow_zero=True)
        for name in ("min_boundary_px", "min_pixels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise PerceptionError(f"params.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class Eligibility:
    """The class of one segment, why, and the labels that caused it."""

    label: int
    kind: Kind
    reason: str
    blocked_by: tuple[int, ...] = ()
    below: tuple[int, ...] = ()  # labels resting on this one
    pixels: int = 0
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]] | None = field(default=None)


def _label_set(value: object, name: str) -> frozenset[int] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise PerceptionError(f"{name} must be a set of integer labels, got {type(value).__name__}")
    out = set()
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise PerceptionError(f"{name} must contain integer labels, got {v!r}")
        out.add(int(v))
    return frozenset(out)


def _overlap(a: Segment, b: Segment, axis: int) -> float:
    return float(min(a.upper[axis], b.upper[axis]) - max(a.lower[axis], b.lower[axis]))


def _occlusion_counts(depth: np.ndarray, instance: np.ndarray, z_margin: float) -> dict[tuple[int, int], int]:
    """{(occluded, occluder): vertically adjacent pixel pairs where the occluder is nearer by `z_margin`."""
    counts: dict[tuple[int, int], int] = {}
    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float64)
    for sl_a, sl_b in (((slice(None, -1), slice(None)), (slice(1, None), slice(None))),):
        la, lb, da, db = instance[sl_a], instance[sl_b], d[sl_a], d[sl_b]
        with np.errstate(invalid="ignore"):
            pair = (la != lb) & (la != 0) & (lb != 0)
            a_far = pair & (da > db + z_margin)  # b occludes a
            b_far = pair & (db > da + z_margin)
        for far, near, mask in ((la, lb, a_far), (lb, la, b_far)):
            if not mask.any():
                continue
            keys, n = np.unique(np.stack([far[mask], near[mask]]), axis=1, return_counts=True)
            for (f, o), c in zip(keys.T.tolist(), n.tolist(), strict=True):
                counts[(f, o)] = counts.get((f, o), 0) + c
    return counts


def _rests_on(
    top_label: int, top: Segment, base_label: int, base: Segment, occl: dict[tuple[int, int], int], p: EligibilityParams
) -> bool:
    """Whether `top` rests on `base` (x overlap already checked). Camera y is down: a top is a min y."""
    gap = float(top.upper[1] - base.lower[1])  # top's lowest visible point vs base's highest
    in_depth = top.lower[2] < base.upper[2] - p.z_margin_m and top.upper[2] > base.lower[2]
    if abs(gap) <= p.rest_gap_m and in_depth:
        return True  # bottom seen touching the base, footprints overlapping in depth
    # The base hides top's bottom edge (camera below the base's top): top must start above the base
    # and in front of the base's visible back, else it stands behind the base.
    return (
        gap <= p.rest_gap_m
        and occl.get((top_label, base_label), 0) >= p.min_boundary_px
        and (top.lower[2] < base.upper[2] - p.z_margin_m or base.extent[2] < p.z_margin_m)
    )


def classify(
    depth: np.ndarray,
    instance: np.ndarray,
    intrinsics: object,
    *,
    item_labels: set[int] | None = None,
    not_item_labels: set[int] | frozenset[int] = frozenset(),
    params: EligibilityParams | None = None,
    background: int = 0,
) -> dict[int, Eligibility]:
    """Classify every labelled segment with at least one valid depth pixel; see the module docstring.

    `depth` is float32 metres (NaN or 0 = no return), `instance` an integer label image of the same
    shape (`background` = no segment). Returns {label: Eligibility}; an empty scene gives {}.
    """
    k = CameraIntrinsics.from_any(intrinsics)
    d = check_depth(depth, k)
    if not isinstance(instance, np.ndarray) or not np.issubdtype(instance.dtype, np.integer):
        raise PerceptionError(
            f"instance must be an integer numpy array, got {getattr(instance, 'dtype', type(instance).__name__)}"
        )
    if instance.shape != d.shape:
        raise PerceptionError(f"instance shape {instance.shape} does not match depth shape {d.shape}")
    items = _label_set(item_labels, "item_labels")
    not_items = _label_set(not_item_labels, "not_item_labels") or frozenset()
    p = params if params is not None else EligibilityParams()
    if not isinstance(p, EligibilityParams):
        raise PerceptionError(f"params must be EligibilityParams, got {type(p).__name__}")

    segs = segments_from_labels(d, instance, k, background=background)
    out: dict[int, Eligibility] = {}
    cands: dict[int, Segment] = {}
    for label, s in segs.items():
        bounds = (tuple(s.lower.tolist()), tuple(s.upper.tolist()))
        reason = ""
        if label in not_items:
            reason = "labelled not-an-item"
        elif items is not None and label not in items:
            reason = "not among the item labels"
        elif s.size < p.min_pixels:
            reason = f"too small: {s.size} < {p.min_pixels} pixels"
        elif min(s.extent[0], s.extent[1]) < p.min_extent_m:
            reason = f"too flat: x/y extent {s.extent[0]:.4f} x {s.extent[1]:.4f} m"
        if reason:
            out[label] = Eligibility(label, "not_item", reason, pixels=s.size, bounds=bounds)  # type: ignore[arg-type]
        else:
            cands[label] = s
    if not cands:
        return out

    lab = np.where(np.isin(instance, list(cands)), instance, 0)
    occl = _occlusion_counts(d, lab, p.z_margin_m)
    tol = p.overlap_tol_m
    for a_label, a in cands.items():
        blockers: list[int] = []
        resting: list[int] = []
        for b_label, b in cands.items():
            if b_label == a_label:
                continue
            x_ov, y_ov = _overlap(a, b, 0), _overlap(a, b, 1)
            if x_ov > tol and _rests_on(b_label, b, a_label, a, occl, p):
                resting.append(b_label)
                continue
            if x_ov > tol and _rests_on(a_label, a, b_label, b, occl, p):
                continue  # b carries a: it hides a's bottom edge but does not block it
            if x_ov <= tol or b.lower[2] >= a.lower[2] - p.z_margin_m:
                continue
            behind = a.lower[2] >= b.upper[2] - p.z_margin_m  # a lies behind all of b's visible surface
            if y_ov > tol or (behind and occl.get((a_label, b_label), 0) >= p.min_boundary_px):
                blockers.append(b_label)
        bounds = (tuple(a.lower.tolist()), tuple(a.upper.tolist()))
        if blockers:
            kind: Kind = "blocked"
            reason = f"segments {sorted(blockers)} lie in front of it"
            if resting:
                reason += f" (and {sorted(resting)} rest on it)"
        elif resting:
            kind, reason = "below", f"segments {sorted(resting)} rest on it"
        else:
            kind, reason = "free", "nothing in front of it or resting on it"
        out[a_label] = Eligibility(
            a_label,
            kind,
            reason,
            tuple(sorted(blockers)),
            tuple(sorted(resting)),
            a.size,
            bounds,  # type: ignore[arg-type]
        )
    return out
