"""Suction pick candidates on a target's flat patches, and the pick primitive sequence.

Conventions: everything is in the camera frame (x right, y down, z forward, metres), as produced by
``perception``. A patch's ``normal`` faces the camera; the cup approaches along ``-normal`` and the item is
extracted along ``+normal`` (out of the bin).

Suction point
-------------
On each patch, the patch point nearest (in the patch plane) to the target's centroid (the centre-of-mass
proxy) among the points where the cup can seal: a point seals when the patch points inside the cup's disc
cover at least ``min_seal_coverage`` of the count expected from the patch's point density (``M / area``);
points near the patch edge cover about half and are excluded. The point is projected onto the patch plane.

Clearance
---------
The cup disc swept along ``+normal`` is checked with the SDF on its centre line: a sample whose SDF value
is ``d`` has a free ball of radius ``d`` around it, so the disc is collision free iff ``d >= cup_radius``.
``clearance`` is the minimum SDF over ``samples`` points at heights ``s`` in
``[start_offset, start_offset + extraction_distance]`` above the suction point.

The path starts ``start_offset`` off the surface (default ``cup_radius + 2 * sdf.resolution``) to exclude
the target's own voxels: right at the face the SDF is ~0 (the face itself), and at height ``s`` the face
contributes ``s`` to within a voxel, so with this offset the target alone can never push the clearance
below the cup radius. The price: an obstacle thinner than the offset that lies entirely within
``start_offset`` of the face is missed (at the default 1 cm grid, 3.5 cm). Since the own face caps the
clearance at about ``start_offset``, the score saturates the clearance at ``cup_radius + sdf.resolution``
(voxel noise above that does not reorder candidates; more room than that buys nothing).

Samples outside the SDF grid: in front of the bin opening they are out of the bin (free, skipped);
anywhere else the path leaves through a wall or the back and counts as clearance 0.

Score (higher is better, in [0, 1])::

    score = 0.6 * min(clearance, c_sat) / c_sat + 0.25 * area / (area + 10 * cup_area) + 0.15 / (1 + d / d_ref)

``d`` is the in-plane distance from the suction point to the target's centroid and ``d_ref`` =
``centroid_scale_m``. Clearance dominates: a clearance deficit of one saturation step outweighs both other
terms together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.spatial import cKDTree

from perception.cloud import Segment
from perception.patches import Patch
from perception.sdf import SignedDistanceField

from .checks import PlanningError, real, vec3

__all__ = [
    "Approach",
    "Attach",
    "CandidateReason",
    "CandidateResult",
    "Extract",
    "GuardedApproach",
    "PlaceInTote",
    "PrimitiveStep",
    "Rejection",
    "SuctionCandidate",
    "pick_primitives",
    "rank_suction_candidates",
]

W_CLEARANCE, W_AREA, W_CENTROID = 0.6, 0.25, 0.15


class CandidateReason(StrEnum):
    """Why a patch was rejected, or why the ranking produced no candidates."""

    OK = "ok"
    NO_PATCHES = "no_patches"  # nothing to rank
    TOO_SMALL = "too_small"  # patch area below min_area (smaller than the cup)
    NO_SEAL = "no_seal"  # no patch point with the whole cup disc on the patch
    BLOCKED = "blocked"  # clearance along the extraction path below the cup radius
    OUTSIDE_SDF = "outside_sdf"  # suction point outside the SDF grid (not in this bin)


@dataclass(frozen=True, slots=True, eq=False)
class SuctionCandidate:
    """A suction pick: point on the patch, approach direction (-normal), clearance (m) and score."""

    patch: Patch
    patch_index: int
    point: np.ndarray  # (3,) camera frame
    approach: np.ndarray  # (3,) unit, = -patch.normal (into the bin)
    clearance: float  # min SDF (m) along the extraction path
    score: float
    centroid_distance: float  # in-plane distance from point to the target centroid (m)


@dataclass(frozen=True, slots=True)
class Rejection:
    patch_index: int
    reason: CandidateReason
    detail: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class CandidateResult:
    """Candidates best first; ``reason`` is OK iff there is at least one. ``rejected`` lists the others."""

    candidates: tuple[SuctionCandidate, ...]
    reason: CandidateReason
    detail: str = ""
    rejected: tuple[Rejection, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is CandidateReason.OK

    @property
    def best(self) -> SuctionCandidate | None:
        return self.candidates[0] if self.candidates else None


# ----------------------------------------------------------------------------------------------- validation


def _check_patch(i: int, p: object) -> None:
    if not isinstance(p, Patch):
        raise PlanningError(f"patches[{i}] must be a Patch, got {type(p).__name__}")
    n = np.asarray(p.normal, dtype=np.float64)
    if n.shape != (3,) or not np.all(np.isfinite(n)) or abs(np.linalg.norm(n) - 1.0) > 1e-3:
        raise PlanningError(f"patches[{i}].normal must be a finite unit 3-vector")
    pts = np.asarray(p.points)
    if pts.ndim != 2 or pts.shape[1] != 3 or not np.all(np.isfinite(pts)):
        raise PlanningError(f"patches[{i}].points must be a finite (M, 3) array")
    if not math.isfinite(p.area) or p.area < 0:
        raise PlanningError(f"patches[{i}].area must be finite and >= 0, got {p.area!r}")


# ----------------------------------------------------------------------------------------------- ranking


def _suction_point(patch: Patch, centroid: np.ndarray, cup_r: float, min_cov: float) -> np.ndarray | None:
    pts = np.asarray(patch.points, dtype=np.float64)
    n = np.asarray(patch.normal, dtype=np.float64)
    if pts.shape[0] < 3 or patch.area <= 0:
        return None
    expected = pts.shape[0] / patch.area * math.pi * cup_r * cup_r
    rel = pts - centroid
    lateral = rel - np.outer(rel @ n, n)
    # Nearest sealing point to the centroid: test the points in order of distance, a chunk at a time, and stop at
    # the first chunk holding one (the centre of a face usually seals: one chunk instead of every point).
    order = np.argsort(np.einsum("ij,ij->i", lateral, lateral), kind="stable")
    tree = cKDTree(pts)
    chunk = 64
    for start in range(0, order.size, chunk):
        idx = order[start : start + chunk]
        ok = tree.query_ball_point(pts[idx], cup_r, return_length=True) >= min_cov * expected
        if ok.any():
            best = pts[idx[int(np.argmax(ok))]]
            centre = np.asarray(patch.centre, dtype=np.float64)
            return best - ((best - centre) @ n) * n  # onto the patch plane
        chunk = min(4 * chunk, 4096)
    return None


def _path_clearance(sdf: SignedDistanceField, point: np.ndarray, normal: np.ndarray, heights: np.ndarray) -> float:
    path = point[None, :] + heights[:, None] * normal[None, :]
    d = sdf.query(path)
    miss = np.isnan(d)
    if miss.any():
        b = sdf.bin.to_bin(path[miss])
        out_front = (b[:, 2] < 0) & (b[:, 0] >= 0) & (b[:, 0] <= sdf.bin.width) & (b[:, 1] >= 0)
        out_front &= b[:, 1] <= sdf.bin.height
        vals = np.where(out_front, np.inf, 0.0)  # out of the opening: free; through a wall: blocked
        d = d.copy()
        d[miss] = vals
    return float(np.min(d))


def rank_suction_candidates(
    target: Segment,
    patches: Sequence[Patch],
    sdf: SignedDistanceField,
    *,
    cup_radius_m: float = 0.015,
    min_area_m2: float | None = None,
    extraction_distance_m: float = 0.15,
    samples: int | None = None,
    start_offset_m: float | None = None,
    min_seal_coverage: float = 0.75,
    centroid_scale_m: float = 0.05,
) -> CandidateResult:
    """Suction candidates on ``patches`` of ``target``, best first (see the module doc).

    ``min_area_m2`` defaults to the cup's disc area; ``samples`` (default: one per half voxel, at least 2)
    along the extraction path; ``start_offset_m`` defaults to ``cup_radius_m + 2 * sdf.resolution``.
    Empty ``patches`` give no candidates with reason ``NO_PATCHES``; invalid arguments raise PlanningError.
    """
    if not isinstance(target, Segment):
        raise PlanningError(f"target must be a Segment, got {type(target).__name__}")
    if not isinstance(sdf, SignedDistanceField):
        raise PlanningError(f"sdf must be a SignedDistanceField, got {type(sdf).__name__}")
    if isinstance(patches, Patch | str | bytes) or not isinstance(patches, Sequence):
        raise PlanningError(f"patches must be a sequence of Patch, got {type(patches).__name__}")
    cup_r = real("cup_radius_m", cup_radius_m)
    cup_area = math.pi * cup_r * cup_r
    min_area = cup_area if min_area_m2 is None else real("min_area_m2", min_area_m2, allow_zero=True)
    length = real("extraction_distance_m", extraction_distance_m)
    offset = cup_r + 2.0 * sdf.resolution if start_offset_m is None else real("start_offset_m", start_offset_m)
    min_cov = real("min_seal_coverage", min_seal_coverage, upper=1.0)
    d_ref = real("centroid_scale_m", centroid_scale_m)
    if samples is None:
        n_samples = max(2, math.ceil(length / (0.5 * sdf.resolution)) + 1)
    elif isinstance(samples, bool) or not isinstance(samples, int | np.integer) or samples < 2:
        raise PlanningError(f"samples must be an integer >= 2, got {samples!r}")
    else:
        n_samples = int(samples)
    for i, p in enumerate(patches):
        _check_patch(i, p)
    if len(patches) == 0:
        return CandidateResult((), CandidateReason.NO_PATCHES, "no patches on the target")

    centroid = np.asarray(target.centroid, dtype=np.float64)
    heights = np.linspace(offset, offset + length, n_samples)
    c_sat = cup_r + sdf.resolution
    cands: list[SuctionCandidate] = []
    rejected: list[Rejection] = []
    for i, patch in enumerate(patches):
        if patch.area < min_area:
            rejected.append(Rejection(i, CandidateReason.TOO_SMALL, f"area {patch.area:.2e} < {min_area:.2e} m^2"))
            continue
        point = _suction_point(patch, centroid, cup_r, min_cov)
        if point is None:
            rejected.append(Rejection(i, CandidateReason.NO_SEAL, "no point with the cup disc on the patch"))
            continue
        normal = np.asarray(patch.normal, dtype=np.float64)
        if np.isnan(sdf.query(point[None, :])[0]):
            rejected.append(Rejection(i, CandidateReason.OUTSIDE_SDF, "suction point outside the SDF grid"))
            continue
        clearance = _path_clearance(sdf, point, normal, heights)
        if clearance < cup_r:
            rejected.append(Rejection(i, CandidateReason.BLOCKED, f"clearance {clearance:.4f} < cup {cup_r} m"))
            continue
        rel = point - centroid
        lateral = rel - (rel @ normal) * normal
        dist = float(np.linalg.norm(lateral))
        score = (
            W_CLEARANCE * min(clearance, c_sat) / c_sat
            + W_AREA * patch.area / (patch.area + 10.0 * cup_area)
            + W_CENTROID / (1.0 + dist / d_ref)
        )
        point.setflags(write=False)
        approach = -normal
        approach.setflags(write=False)
        cands.append(SuctionCandidate(patch, i, point, approach, clearance, float(score), dist))

    cands.sort(key=lambda c: (-round(c.score, 12), c.patch_index))
    if cands:
        return CandidateResult(tuple(cands), CandidateReason.OK, f"{len(cands)} candidates", tuple(rejected))
    reasons = {r.reason for r in rejected}
    for reason in (CandidateReason.BLOCKED, CandidateReason.NO_SEAL, CandidateReason.OUTSIDE_SDF):
        if reason in reasons:
            break
    else:
        reason = CandidateReason.TOO_SMALL
    return CandidateResult((), reason, f"all {len(patches)} patches rejected", tuple(rejected))


# ----------------------------------------------------------------------------------------------- primitives


@dataclass(frozen=True, slots=True, eq=False)
class Approach:
    """Free-space move to ``position`` (standoff above the suction point), tool axis along ``direction``."""

    position: np.ndarray
    direction: np.ndarray
    speed_m_s: float
    force_limit_n: float  # abort if exceeded (unexpected contact)


@dataclass(frozen=True, slots=True, eq=False)
class GuardedApproach:
    """Move along ``direction`` until contact (``contact_force_n``) or ``max_travel_m``; abort at the limit."""

    direction: np.ndarray
    max_travel_m: float
    speed_m_s: float
    contact_force_n: float
    force_limit_n: float


@dataclass(frozen=True, slots=True)
class Attach:
    """Suction on; attached once gauge pressure <= ``vacuum_threshold_kpa`` (negative) within the timeout."""

    vacuum_threshold_kpa: float
    timeout_s: float


@dataclass(frozen=True, slots=True, eq=False)
class Extract:
    """Move ``distance_m`` along ``direction`` (out of the bin) holding vacuum; abort past the force limit."""

    direction: np.ndarray
    distance_m: float
    speed_m_s: float
    force_limit_n: float
    vacuum_threshold_kpa: float  # drop detection during the move


@dataclass(frozen=True, slots=True)
class PlaceInTote:
    """Carry to the tote and release (suction off), waiting ``release_s`` for the item to drop."""

    speed_m_s: float
    release_s: float


PrimitiveStep = Approach | GuardedApproach | Attach | Extract | PlaceInTote


def pick_primitives(
    candidate: SuctionCandidate,
    *,
    standoff_m: float = 0.05,
    approach_speed_m_s: float = 0.25,
    guarded_speed_m_s: float = 0.03,
    overtravel_m: float = 0.01,
    contact_force_n: float = 5.0,
    force_limit_n: float = 20.0,
    vacuum_threshold_kpa: float = -40.0,
    attach_timeout_s: float = 0.5,
    extraction_distance_m: float = 0.15,
    extract_speed_m_s: float = 0.1,
    extract_force_limit_n: float = 40.0,
    place_speed_m_s: float = 0.5,
    release_s: float = 0.3,
) -> list[PrimitiveStep]:
    """Approach above the point, guarded approach, attach, extract along -approach, place in the tote.

    The guarded move travels ``standoff_m + overtravel_m`` (the surface may lie behind the estimate).
    ``contact_force_n`` must be below ``force_limit_n``.
    """
    if not isinstance(candidate, SuctionCandidate):
        raise PlanningError(f"candidate must be a SuctionCandidate, got {type(candidate).__name__}")
    point = vec3("candidate.point", candidate.point)
    approach = vec3("candidate.approach", candidate.approach)
    norm = float(np.linalg.norm(approach))
    if abs(norm - 1.0) > 1e-3:
        raise PlanningError(f"candidate.approach must be a unit vector, got norm {norm}")
    standoff = real("standoff_m", standoff_m)
    over = real("overtravel_m", overtravel_m, allow_zero=True)
    contact = real("contact_force_n", contact_force_n)
    limit = real("force_limit_n", force_limit_n)
    if contact >= limit:
        raise PlanningError(f"contact_force_n {contact} must be below force_limit_n {limit}")
    if isinstance(vacuum_threshold_kpa, bool) or not isinstance(vacuum_threshold_kpa, int | float):
        raise PlanningError(f"vacuum_threshold_kpa must be a real number, got {vacuum_threshold_kpa!r}")
    vac = float(vacuum_threshold_kpa)
    if not math.isfinite(vac) or not -101.325 < vac < 0:
        raise PlanningError(
            f"vacuum_threshold_kpa must be a gauge vacuum in (-101.325, 0), got {vacuum_threshold_kpa!r}"
        )
    out_dir = -approach / norm
    out_dir.setflags(write=False)
    app_dir = approach / norm
    app_dir.setflags(write=False)
    above = point - standoff * app_dir
    above.setflags(write=False)
    return [
        Approach(above, app_dir, real("approach_speed_m_s", approach_speed_m_s), limit),
        GuardedApproach(app_dir, standoff + over, real("guarded_speed_m_s", guarded_speed_m_s), contact, limit),
        Attach(vac, real("attach_timeout_s", attach_timeout_s)),
        Extract(
            out_dir,
            real("extraction_distance_m", extraction_distance_m),
            real("extract_speed_m_s", extract_speed_m_s),
            real("extract_force_limit_n", extract_force_limit_n),
            vac,
        ),
        PlaceInTote(real("place_speed_m_s", place_speed_m_s), real("release_s", release_s, allow_zero=True)),
    ]
