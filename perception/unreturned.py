"""Item pixels without a depth return (dark products, grazing faces, edges): the depth they may have.

A segmenter sees an item where the depth image has a hole; the front-face map must not read the hole as free
space. Two conservative fills:

- `fill_from_instances`: a hole inside an item instance that has enough returns takes a near percentile of that
  instance's returned depths (an item's front face is about flat; the near side errs towards occupied).
- `fill_from_below`: a hole region left (a dark item: no instance returns at all) takes the near depth of the
  returns just below its lower edge: an item rests on something, and what carries it (the floor, another item's
  top) shows up to the item's front face, or nearer when the support stands in front of it.

A filled hole's depth is a guess on the near side, and nearer points project onto less of the bin's front than the
face itself covers: `hole_rays` adds points along each filled pixel's ray from its filled depth to the back, so every
cell the item may cover behind the guess gets a free depth no deeper than where the ray crosses it.

A hole left by both (nothing returned under it either) stays a hole: the front-face map calls its cells
unobserved (`perception.occupancy.fill_unobserved`). Points along each such pixel's ray at every depth of the bin
(the item may lie anywhere on it) were tried and measured: 500 mixed cycles stowed 155 items, not 198, the rays
blocking the space in front of every dark item.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .cloud import depth_to_points
from .common import PerceptionError

MIN_RETURNS = 20  # returned pixels an instance needs before its holes take its depth
NEAR_PERCENTILE = 10.0
BELOW_PX = 3  # fill_from_below looks this many pixels under each column's lowest hole pixel
MIN_BELOW = 3  # returns under a hole region it needs


def fill_from_instances(depth: np.ndarray, item: np.ndarray, instance: np.ndarray, *,
                        min_returns: int = MIN_RETURNS) -> tuple[np.ndarray, np.ndarray]:
    """(depth with the item holes of well-returned instances filled, bool mask of the item holes left)."""
    if depth.shape != item.shape or depth.shape != instance.shape:
        raise PerceptionError(f"depth {depth.shape}, item mask {item.shape} and instances {instance.shape} differ")
    out = np.array(depth, dtype=np.float32, copy=True)
    returned = np.isfinite(out) & (out > 0)
    holes = item & ~returned
    for label in np.unique(instance[holes]):
        if label == 0:
            continue
        inst = instance == label
        got = out[inst & returned]
        if got.size >= min_returns:
            fill = inst & holes
            out[fill] = np.float32(np.percentile(got, NEAR_PERCENTILE))
            holes &= ~fill
    return out, holes


def fill_from_below(depth: np.ndarray, holes: np.ndarray, *, below_px: int = BELOW_PX,
                    min_returns: int = MIN_BELOW) -> tuple[np.ndarray, np.ndarray]:
    """(depth with each hole region (8-connected) that has returns under its lower edge filled with their near
    percentile, bool mask of the holes left). Image rows grow downwards: "under" is a larger row index."""
    out = np.array(depth, dtype=np.float32, copy=True)
    left = holes.copy()
    regions, n = ndimage.label(holes, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return out, left
    returned = np.isfinite(out) & (out > 0)
    h = holes.shape[0]
    for k, (rows, cols) in enumerate(ndimage.find_objects(regions), start=1):
        region = regions[rows, cols] == k
        lowest = rows.start + (region.shape[0] - 1 - np.argmax(region[::-1], axis=0))  # per column of the box
        got = []
        for u, v in zip(range(cols.start, cols.stop), lowest, strict=True):
            if not region[:, u - cols.start].any():
                continue
            below = slice(v + 1, min(h, v + 1 + below_px))
            got.extend(out[below, u][returned[below, u]].tolist())
        if len(got) >= min_returns:
            mask = regions == k
            out[mask] = np.float32(np.percentile(got, NEAR_PERCENTILE))
            left &= ~mask
    return out, left


def hole_rays(depth: np.ndarray, filled: np.ndarray, intrinsics: object, *, reach_m: float,
              step_m: float) -> np.ndarray:
    """(N, 3) camera-frame points along the rays of the `filled` pixels, from their filled `depth` (metres) to
    `reach_m` beyond it, every `step_m` along the optical axis (step_m no more than a face-map cell: a ray
    inside the field of view moves sideways less than it moves in depth, so it leaves no cell out)."""
    if not (np.isfinite(reach_m) and reach_m >= 0 and np.isfinite(step_m) and step_m > 0):
        raise PerceptionError(f"reach_m must be >= 0 and step_m > 0, got {reach_m!r}, {step_m!r}")
    if depth.shape != filled.shape:
        raise PerceptionError(f"depth {depth.shape} and filled mask {filled.shape} differ")
    mask = filled & np.isfinite(depth) & (depth > 0)
    if not mask.any():
        return np.zeros((0, 3))
    steps = np.arange(step_m, reach_m + step_m / 2, step_m)
    return np.concatenate([depth_to_points(depth + np.float32(s), intrinsics, mask=mask) for s in steps]
                          or [np.zeros((0, 3))])
