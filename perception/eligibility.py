"""Eligibility of segmented items for picking: not an item, free, below others, blocked by others.

Geometric rules over the 3-D segments of an instance image (camera frame: x right, y DOWN,
z forward, metres), their depth order and their image boundaries. Two labelled pixels are
neighbours when adjacent along a row or column, or when only nearer unlabelled pixels (a thin
occluder such as the band, at most `max_gap_px`) lie between them; a segment is occluded by
another along a seam when the other's neighbouring pixels are nearer (by `occlusion_eps_m`).

- "below": another segment rests on it: that segment's lowest visible point (largest camera y)
  lies within `rest_gap_m` of this one's top (smallest camera y), x extents overlap, and its front
  is ahead of this segment's visible back by `contact_tol_m` (it cannot be standing behind it); or this segment hides
  the other's bottom edge along a seam, and either the other's front is ahead of its visible back
  or its top face is not seen at all (z extent under `z_margin_m`).
- "blocked": another segment, not resting on it nor carrying it, lies in front of it (its front
  surface nearer by `z_margin_m`) and covers it in the front view: (a) their x and y extents overlap
  by more than `overlap_tol_m`; or (b) this segment lies behind all of the other's visible surface,
  their extents touch, and the other occludes it along a seam of `min_boundary_px` pixel pairs (it
  continues behind: this catches side faces seen past an edge); or (c) this segment rests on nothing
  seen, its bottom edge is occluded (nearer pixels below it by `z_margin_m` on `min_boundary_px`
  pairs) so it reaches down behind the occluders, and the other overlaps it in x and lies lower.
- Both true resolves to "blocked" (as `drivers.sim.world.ground_truth_eligibility` does: something
  in front of an item makes it unreachable whatever rests on it).
- "not_item": labels in `not_item_labels`, labels outside `item_labels` (when given), and segments
  too small (fewer than `min_pixels` points) or too flat (x or y extent under `min_extent_m`).

Known limit: an item standing right behind a shorter one (touching its back) and an item resting
on the back of that one's top face look the same from the front (bottom edge meets the far edge
of the seen top face); the rules read that as "standing behind" (the commoner case in our bins).
Labels with no valid pixel (hidden items) cannot be classified and are absent from the result;
label 0 (`background`) is never a segment. Everything is visible-surface geometry.
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
    occlusion_eps_m: float = 0.0
    contact_tol_m: float = 0.0
    max_gap_px: int = 60

    def __post_init__(self) -> None:
        for name in ("z_margin_m", "overlap_tol_m", "rest_gap_m", "min_extent_m", "occlusion_eps_m", "contact_tol_m"):
            check_positive(getattr(self, name), f"params.{name}", allow_zero=True)
        for name in ("min_boundary_px", "min_pixels", "max_gap_px"):
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


def _boundary_pairs(depth: np.ndarray, instance: np.ndarray, max_gap_px: int, see_through_m: float) -> np.ndarray:
    """(5, K) rows: first label, second label, their depths, axis (0: first above second, 1: first left of second),
    for neighbouring labelled pixels along columns and rows.

    Two labelled pixels count as neighbours when adjacent, or when only unlabelled pixels nearer than both by
    `see_through_m` lie between them (at most `max_gap_px`): a thin occluder such as the band hides the seam.
    """
    out = []
    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.inf).astype(np.float64)
    for axis, (lab_img, d_img) in enumerate(((instance.T, d.T), (instance, d))):  # columns (first = upper), rows
        lab = np.ascontiguousarray(lab_img).ravel()
        dd = np.ascontiguousarray(d_img).ravel()
        line = lab_img.shape[1]
        idx = np.flatnonzero(lab)
        if idx.size < 2:
            continue
        i0, i1 = idx[:-1], idx[1:]
        keep = (lab[i0] != lab[i1]) & (i0 // line == i1 // line) & (i1 - i0 - 1 <= max_gap_px)
        i0, i1 = i0[keep], i1[keep]
        gap = i1 - i0 > 1
        if gap.any():
            s, e = i0[gap] + 1, i1[gap]
            pad = np.append(dd, np.inf)
            gmax = np.maximum.reduceat(pad, np.stack([s, e], axis=1).ravel())[::2]
            ok = np.ones(i0.size, dtype=bool)
            ok[gap] = gmax < np.minimum(dd[i0[gap]], dd[i1[gap]]) - see_through_m
            i0, i1 = i0[ok], i1[ok]
        lab0, lab1 = lab[i0].astype(np.float64), lab[i1].astype(np.float64)
        out.append(np.stack([lab0, lab1, dd[i0], dd[i1], np.full(i0.size, float(axis))]))
    return np.concatenate(out, axis=1) if out else np.zeros((5, 0))


def _occlusion_counts(pairs: np.ndarray, z_margin: float) -> dict[tuple[int, int], int]:
    """{(occluded, occluder): neighbouring pixel pairs where the occluder is nearer by more than `z_margin`."""
    counts: dict[tuple[int, int], int] = {}
    la, lb, da, db = pairs[:4]
    for far, near, mask in ((la, lb, da > db + z_margin), (lb, la, db > da + z_margin)):
        if not mask.any():
            continue
        keys, n = np.unique(np.stack([far[mask], near[mask]]).astype(np.int64), axis=1, return_counts=True)
        for (f, o), c in zip(keys.T.tolist(), n.tolist(), strict=True):
            counts[(f, o)] = counts.get((f, o), 0) + c
    return counts


def _rests_on(
    top_label: int,
    top: Segment,
    base_label: int,
    base: Segment,
    seam: dict[tuple[int, int], int],
    p: EligibilityParams,
) -> bool:
    """Whether `top` rests on `base` (x overlap already checked). Camera y is down: a top is a min y."""
    gap = float(top.upper[1] - base.lower[1])  # top's lowest visible point vs base's highest
    # Top's front is ahead of the base's visible back: it cannot be standing behind the base.
    ahead = top.lower[2] < base.upper[2] - p.contact_tol_m
    in_depth = ahead and top.upper[2] > base.lower[2]
    if abs(gap) <= p.rest_gap_m and in_depth:
        return True  # bottom seen touching the base, footprints overlapping in depth
    # The base hides top's bottom edge (camera below the base's top): top must start above the base
    # and in front of the base's visible back, else it stands behind the base.
    return (
        gap <= p.rest_gap_m
        and seam.get((top_label, base_label), 0) >= p.min_boundary_px
        and (ahead or base.extent[2] < p.z_margin_m)
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
    pairs = _boundary_pairs(d, lab, p.max_gap_px, p.z_margin_m)
    seam = _occlusion_counts(pairs, p.occlusion_eps_m)
    vert = pairs[:, (pairs[4] == 0) & (pairs[3] < pairs[2] - p.z_margin_m)]  # upper pixel occluded by the lower
    labels_hidden, n_hidden = np.unique(vert[0].astype(np.int64), return_counts=True)
    hidden_bottom = dict(zip(labels_hidden.tolist(), n_hidden.tolist(), strict=True))
    tol = p.overlap_tol_m
    rests = {
        (t, s)
        for t, top in cands.items()
        for s, base in cands.items()
        if t != s and _overlap(top, base, 0) > tol and _rests_on(t, top, s, base, seam, p)
    }
    for a_label, a in cands.items():
        blockers: list[int] = []
        resting = [b_label for b_label in cands if (b_label, a_label) in rests]
        supported = any(t == a_label for t, _ in rests)
        # Its bottom edge hidden by nearer things and resting on nothing seen: it reaches down behind them.
        reaches_down = not supported and hidden_bottom.get(a_label, 0) >= p.min_boundary_px
        for b_label, b in cands.items():
            if b_label == a_label or (b_label, a_label) in rests or (a_label, b_label) in rests:
                continue
            if b.lower[2] >= a.lower[2] - p.z_margin_m:
                continue  # b is not in front of a
            x_ov, y_ov = _overlap(a, b, 0), _overlap(a, b, 1)
            behind = a.lower[2] >= b.upper[2] - p.z_margin_m  # a lies behind all of b's visible surface
            if x_ov > tol and y_ov > tol:
                blockers.append(b_label)  # front views overlap
            elif behind and min(x_ov, y_ov) >= 0 and seam.get((a_label, b_label), 0) >= p.min_boundary_px:
                blockers.append(b_label)  # b hides a along a shared image boundary: a continues behind it
            elif behind and reaches_down and x_ov > tol and b.upper[1] - max(a.lower[1], b.lower[1]) > tol:
                blockers.append(b_label)  # a's hidden lower part stands behind b
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
