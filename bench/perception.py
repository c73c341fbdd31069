"""Benchmark: perception (and stow placement) on a 640x480 depth frame of a generated bin.

The scene comes from the simulated world: a seeded, dense bin rendered with depth,
instance and class labels, plus Gaussian depth noise (sigma = 2.5 mm * z^2). Each step
runs `--repeat` times and reports its median and p95 in milliseconds.

Usage: python bench/perception.py [--repeat N] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from bench.timing import timed
from drivers.camera import Intrinsics
from drivers.sim.world import generate_bin
from drivers.sim.world_render import CameraPose, render_bin
from perception.change import depth_change
from perception.cloud import depth_to_points, segments_from_labels
from perception.occupancy import BinGeometry, free_space_boxes, front_face_map
from perception.patches import find_patches
from perception.sdf import SignedDistanceField, bin_sdf
from planning.placement import PlacementResult, find_placements
from planning.suction import CandidateResult, rank_suction_candidates

ITEM_MM = (120.0, 80.0, 150.0)  # the item to stow: width, height, depth


def scene(seed: int) -> dict[str, object]:
    k = Intrinsics.from_fov(640, 480, 70.0)
    pose = CameraPose()
    world_bin = generate_bin(seed, density=0.9)
    view = render_bin(world_bin, k, pose)
    rng = np.random.default_rng(seed)
    depth = view.depth_m
    noisy = (depth + rng.normal(0.0, 1.0, depth.shape) * 0.0025 * np.nan_to_num(depth) ** 2).astype(np.float32)
    origin = pose.to_camera(world_bin, np.zeros((1, 3)))[0]
    geometry = BinGeometry(tuple(float(v) for v in origin), world_bin.width_mm / 1e3, world_bin.height_mm / 1e3,
                           world_bin.depth_mm / 1e3)
    return {"k": k, "bin": world_bin, "view": view, "depth": depth, "noisy": noisy, "geometry": geometry}


def stow_decision(depth: np.ndarray, k: Intrinsics, geometry: BinGeometry, resolution: float) -> PlacementResult:
    """One bin's stow decision from a depth frame: points, front-face map, placement search."""
    fmap = front_face_map(depth_to_points(depth, k), geometry, resolution=resolution)
    width, height, item_depth = ITEM_MM
    return find_placements(
        fmap.occupied(item_depth / 1e3), resolution * 1e3, width, height, allow_rotation=True,
        free_depth_mm=fmap.free_depth * 1e3, depth_mm=item_depth,
    )


def pick_candidates(depth: np.ndarray, instance: np.ndarray, k: Intrinsics, geometry: BinGeometry) -> CandidateResult:
    """The per-pick path on a new frame: segments, the frame's bin SDF (once), the largest item's patches, ranking."""
    segments = segments_from_labels(depth, instance, k)
    target = max(segments.values(), key=lambda seg: len(seg.points))
    sdf = bin_sdf(depth_to_points(depth, k), geometry, resolution=0.01)
    return rank_suction_candidates(target, find_patches(target.points), sdf)


def target_candidates(depth: np.ndarray, instance: np.ndarray, k: Intrinsics, sdf: SignedDistanceField,
                      rank: int = 1) -> CandidateResult:
    """Candidates for another item of an already captured frame: the frame's SDF is shared, not recomputed."""
    segments = segments_from_labels(depth, instance, k)
    target = sorted(segments.values(), key=lambda seg: -len(seg.points))[min(rank, len(segments) - 1)]
    return rank_suction_candidates(target, find_patches(target.points), sdf)


def run(repeat: int, seed: int) -> dict[str, object]:
    s = scene(seed)
    k, depth, noisy, geometry, view = s["k"], s["depth"], s["noisy"], s["geometry"], s["view"]
    points = depth_to_points(depth, k)
    fmap = front_face_map(points, geometry)
    segments = segments_from_labels(depth, view.instance, k)
    target = max(segments.values(), key=lambda seg: len(seg.points))
    resolution = 0.005
    decision = stow_decision(noisy, k, geometry, resolution)
    candidates = pick_candidates(noisy, view.instance, k, geometry)
    shared_sdf = bin_sdf(depth_to_points(noisy, k), geometry, resolution=0.01)  # once per captured frame
    steps = {
        "pick candidates, largest item (segments, patches, SDF, ranking)": timed(
            lambda: pick_candidates(noisy, view.instance, k, geometry), repeat
        ),
        "pick candidates, 2nd item, frame's SDF shared (segments, patches, ranking)": timed(
            lambda: target_candidates(noisy, view.instance, k, shared_sdf), repeat
        ),
        "stow decision, one bin (cloud, map, search)": timed(lambda: stow_decision(noisy, k, geometry, resolution),
                                                            repeat),
        "point cloud + segments": timed(lambda: segments_from_labels(depth, view.instance, k), repeat),
        "free space (front-face map + boxes)": timed(
            lambda: free_space_boxes(front_face_map(depth_to_points(depth, k), geometry), 0.1), repeat
        ),
        "SDF (10 mm voxels)": timed(lambda: bin_sdf(points, geometry, resolution=0.01), repeat),
        "flat patches on the largest item": timed(lambda: find_patches(target.points), repeat),
        "frame change detection": timed(lambda: depth_change(depth, noisy), repeat),
    }
    return {
        "frame": f"{k.width}x{k.height}",
        "items_in_bin": len(s["bin"].items),
        "segments": len(segments),
        "free_cells_fraction": round(float(fmap.free(0.1).mean()), 3),
        "steps_ms": {name: {k2: round(v, 3) for k2, v in t.items()} for name, t in steps.items()},
        "stow_decision_ms": round(steps["stow decision, one bin (cloud, map, search)"]["median"], 3),
        "stow_placements": len(decision.placements),
        "stow_reason": str(decision.reason),
        "pick_candidates_ms": round(
            steps["pick candidates, largest item (segments, patches, SDF, ranking)"]["median"], 3
        ),
        "pick_candidates": len(candidates.candidates),
        "pick_candidates_shared_sdf_ms": round(
            steps["pick candidates, 2nd item, frame's SDF shared (segments, patches, ranking)"]["median"], 3
        ),
        "change_detection_ms": round(steps["frame change detection"]["median"], 3),
        "free_space_ms": round(steps["free space (front-face map + boxes)"]["median"], 3),
        "sdf_ms": round(steps["SDF (10 mm voxels)"]["median"], 3),
        "segments_ms": round(steps["point cloud + segments"]["median"], 3),
        "repeat": repeat,
        "seed": seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="runs per step (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated bin (0: 18 items)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    result = run(args.repeat, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    print(f"perception on a {result['frame']} frame: generated bin (seed {args.seed}) with "
          f"{result['items_in_bin']} items, {result['segments']} segments; {args.repeat} runs per step")
    print(f"{'step':<76}{'median ms':>11}{'p95 ms':>10}")
    for name, t in result["steps_ms"].items():
        print(f"{name:<76}{t['median']:>11.2f}{t['p95']:>10.2f}")
    print(f"stow decision for a {ITEM_MM[0]:g}x{ITEM_MM[1]:g}x{ITEM_MM[2]:g} mm item: {result['stow_reason']}, "
          f"{result['stow_placements']} placements; {result['pick_candidates']} suction candidates on the largest item")


if __name__ == "__main__":
    main()
