"""Benchmark: the learned perception models (issue 13) and the whole pick decision, on this machine.

The scene is the simulated EOAT camera's: a seeded dense bin (`generate_bin(seed, density=0.9)`), one 320x240
frame (`capture` with `Intrinsics.from_fov(320, 240, 70.0)` and `CameraPose()`), the models at their shipped
input sizes (frames resized to 192x144, 64x64 crops), and the catalogue's references of the most visible item
of the bin that the booth can photograph. The frame's truth (`render_training_view`, the same frame) is used
only to cut the embedding row's crops; the pick decision sees the frame alone.

Rows (each run `--repeat` times after a warm-up; median and p95 in milliseconds):

- `segmenter`, `pick_model`: the runners' `segment` on the frame, pre- and post-processing included;
- `embedding`: one batched `Embedder.embed` call on EMBED_BATCH crops of the frame's items (repeated when the
  frame has fewer), divided by the number of crops;
- `pick_decision`: `planning.pick_decision.decide_pick` (pick model, embeddings, match against the
  precomputed reference embeddings, suction candidates ranked in the bin's SDF);
- floors, measured in the same run: the bare onnxruntime `session.run` of the segmenter on a prepared input,
  `frame_tensor` alone, `crop_tensor` per crop, a bare 1-crop embedding run, and the geometric half of the pick
  decision (SDF, patches, ranking) on the truth's largest item, so the reader sees what each layer adds.

Usage: python bench/models.py [--models DIR] [--repeat N] [--seed S] [--threads T] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from bench.timing import timed
from drivers.camera import Intrinsics
from drivers.sim.camera_view import FrameTruth, render_training_view
from drivers.sim.catalogue import Catalogue, CatalogueError, ReferenceImage
from drivers.sim.world import Bin, generate_bin
from drivers.sim.world_render import CameraPose
from perception.learned.contracts import ModelError
from perception.learned.embedding import Embedder, Match
from perception.learned.pick_model import PickInstance, PickModel, PickSegmentation
from perception.learned.preprocess import crop_tensor, frame_tensor
from perception.learned.segmenter import StowSegmenter
from perception.learned.session import MAX_THREADS, ModelSession, SessionSettings, open_model
from perception.occupancy import BinGeometry
from planning.pick_decision import Identification, PickModels, decide_pick, plan_candidates

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("segmenter", "pick", "embedding")
EMBED_BATCH = 16  # crops per timed embedding call (a dense bin view holds about this many items)
MIN_CROP_PIXELS = 20  # an item needs this many visible pixels to be cropped
AIMS_MS = {"segmenter": 40.0, "embedding": 5.0, "pick_decision": 150.0}  # issue 13's acceptance aims


def per(t: dict[str, float], n: int) -> dict[str, float]:
    return {k: v / n for k, v in t.items()}


def load_models(models: Path, settings: SessionSettings) -> dict[str, ModelSession]:
    """The three sessions, contract-checked (ModelError / ContractError on the first file that fails)."""
    return {kind: open_model(models / f"{kind}.onnx", kind, settings) for kind in KINDS}


def scene(seed: int) -> dict[str, Any]:
    k = Intrinsics.from_fov(320, 240, 70.0)
    pose = CameraPose()
    world_bin = generate_bin(seed, density=0.9)
    frame, truth = render_training_view(world_bin, k, pose, rng=seed)  # the frame `capture` gives, and its truth
    assert frame.color is not None
    ox, oy, oz = (float(v) for v in pose.to_camera(world_bin, np.zeros((1, 3)))[0])
    geometry = BinGeometry((ox, oy, oz), world_bin.width_mm / 1e3, world_bin.height_mm / 1e3,
                           world_bin.depth_mm / 1e3)
    return {"k": k, "bin": world_bin, "rgb": frame.color, "depth": frame.depth, "truth": truth,
            "geometry": geometry}


def visible_items(truth: FrameTruth) -> list[tuple[int, int]]:
    """(item id, visible pixels) of the frame's items with at least MIN_CROP_PIXELS, most visible first."""
    ids, counts = np.unique(truth.instance[truth.instance > 0], return_counts=True)
    items = [(int(i), int(n)) for i, n in zip(ids, counts, strict=True) if n >= MIN_CROP_PIXELS]
    return sorted(items, key=lambda t: -t[1])


def ordered_product(world_bin: Bin, items: list[tuple[int, int]], catalogue: Catalogue,
                    ) -> tuple[int, tuple[ReferenceImage, ...]]:
    """The most visible item whose product the catalogue's booth can photograph, and its references."""
    for item_id, _ in items:
        item = world_bin.get(item_id).item
        try:
            return item_id, catalogue.references(item.product_id, item.size_mm)
        except CatalogueError:
            continue
    raise SystemExit("bench/models.py: no visible item of the bin fits the catalogue's booth; try another --seed")


def truth_identification(truth: FrameTruth, target: int) -> Identification:
    """An identification of `target` from the frame's truth (every item free): the planning floor's input."""
    instances = {}
    for label in (int(v) for v in np.unique(truth.instance) if v > 0):
        pixels = int((truth.instance == label).sum())
        instances[label] = PickInstance(label, 1.0, "free", (0.0, 1.0, 0.0, 0.0), pixels)
    seg = PickSegmentation(truth.instance.astype(np.int32), instances)
    return Identification(seg, Match(target, 1.0, {target: 1.0}, 0.0), "free")


def run(models_dir: Path, repeat: int, seed: int, threads: int) -> dict[str, Any]:
    sessions = load_models(models_dir, SessionSettings(intra_op_threads=threads))
    segmenter = StowSegmenter(sessions["segmenter"])
    pick = PickModel(sessions["pick"])
    embedder = Embedder(sessions["embedding"], max_batch=32)

    s = scene(seed)
    k, rgb, depth, truth, geometry = s["k"], s["rgb"], s["depth"], s["truth"], s["geometry"]
    items = visible_items(truth)
    if not items:
        raise SystemExit(f"bench/models.py: the frame of seed {seed} shows no item; try another --seed")
    target, refs = ordered_product(s["bin"], items, Catalogue(seed))
    references = embedder.embed_images([r.color for r in refs], [r.mask for r in refs])
    crops_one = [crop_tensor(rgb, truth.instance == item_id) for item_id, _ in items]
    crops = np.stack([crops_one[i % len(crops_one)] for i in range(EMBED_BATCH)])
    image = frame_tensor(rgb, depth)
    seg_names = [t.name for t in sessions["segmenter"].contract.outputs]
    raw_seg, raw_emb = sessions["segmenter"].session, sessions["embedding"].session
    models = PickModels(pick, embedder)
    decision = decide_pick(models, rgb, depth, k, references, geometry)
    picked = pick.segment(rgb, depth)
    stow = segmenter.segment(rgb, depth)
    planning_ident = truth_identification(truth, items[0][0])
    mask_largest = truth.instance == items[0][0]

    steps = {
        "segmenter": timed(lambda: segmenter.segment(rgb, depth), repeat),
        "pick_model": timed(lambda: pick.segment(rgb, depth), repeat),
        "embedding": per(timed(lambda: embedder.embed(crops), repeat), EMBED_BATCH),
        "pick_decision": timed(lambda: decide_pick(models, rgb, depth, k, references, geometry), repeat),
        "segmenter_session": timed(lambda: raw_seg.run(seg_names, {"image": image}), repeat),
        "frame_tensor": timed(lambda: frame_tensor(rgb, depth), repeat),
        "crop_tensor": timed(lambda: crop_tensor(rgb, mask_largest), repeat),
        "embedding_single_crop_session": timed(lambda: raw_emb.run(["embedding"], {"crop": crops[:1]}), repeat),
        "pick_planning": timed(lambda: plan_candidates(planning_ident, depth, k, geometry), repeat),
    }
    r3 = {name: {q: round(v, 3) for q, v in t.items()} for name, t in steps.items()}
    result: dict[str, Any] = {}
    for name, t in r3.items():
        result[f"{name}_ms"] = t["median"]
        result[f"{name}_p95_ms"] = t["p95"]
    planned = decision.candidates is not None
    label = decision.identification.label
    target_pixels = decision.identification.segmentation.instances[label].pixels if label is not None else 0
    outcome = decision.reason or (f"{len(decision.candidates.candidates)} suction candidates on segment {label} "
                                  f"({target_pixels} pixels)" if decision.candidates is not None else "")
    result.update({
        "aims_ms": AIMS_MS,
        "within_aims": {name: r3[name]["median"] < aim for name, aim in AIMS_MS.items()},
        "embedding_batch": EMBED_BATCH,
        "embedding_distinct_crops": len(crops_one),
        "pick_decision_planned": planned,
        "pick_decision_outcome": outcome,
        "pick_decision_target_pixels": target_pixels,
        "pick_decision_candidates": len(decision.candidates.candidates) if decision.candidates is not None else 0,
        "pick_segments": len(picked.instances),
        "stow_segments": len(stow.scores),
        "frame": f"{k.width}x{k.height}",
        "items_in_bin": len(s["bin"].items),
        "visible_items": len(items),
        "largest_item_pixels": items[0][1],
        "target_item": target,
        "references": len(refs),
        "models": str(models_dir),
        "metrics": {kind: sessions[kind].metadata.metrics for kind in KINDS},
        "threads": threads,
        "repeat": repeat,
        "seed": seed,
    })
    return result


ROWS = (  # (key, label, aim key)
    ("segmenter", "segmenter: StowSegmenter.segment, one frame (pre/post included)", "segmenter"),
    ("pick_model", "pick model: PickModel.segment, one frame (pre/post included)", None),
    ("embedding", f"embedding: Embedder.embed, per crop (batch of {EMBED_BATCH})", "embedding"),
    ("pick_decision", "pick decision: frame -> ranked suction candidates", "pick_decision"),
    ("segmenter_session", "  floor: segmenter session.run on a prepared input", None),
    ("frame_tensor", "  floor: frame_tensor (pre-processing alone)", None),
    ("crop_tensor", "  floor: crop_tensor, one crop (largest item)", None),
    ("embedding_single_crop_session", "  floor: embedding session.run, a single crop", None),
    ("pick_planning", "  floor: planning half (SDF, patches, ranking), the truth's largest item", None),
)


def print_table(r: dict[str, Any]) -> None:
    untrained = all(not m for m in r["metrics"].values())
    print(f"learned models from {r['models']}{' (untrained: no metrics in their metadata)' if untrained else ''}; "
          f"onnxruntime on CPU, {r['threads']} intra-op thread(s); {r['repeat']} runs per step")
    print(f"scene: generated bin (seed {r['seed']}) with {r['items_in_bin']} items, a {r['frame']} frame "
          f"(models at 192x144, crops 64x64), {r['visible_items']} visible items; ordered product: item "
          f"{r['target_item']} ({r['references']} references)")
    print(f"{'step':<72}{'median ms':>11}{'p95 ms':>10}{'aim ms':>9}  ")
    for key, label, aim_key in ROWS:
        aim = AIMS_MS.get(aim_key) if aim_key else None
        verdict = ("ok" if r[f"{key}_ms"] < aim else "over") if aim is not None else ""
        aim_s = f"< {aim:g}" if aim is not None else ""
        print(f"{label:<72}{r[f'{key}_ms']:>11.2f}{r[f'{key}_p95_ms']:>10.2f}{aim_s:>9}  {verdict}")
    print(f"pick model: {r['pick_segments']} segments; stow segmenter: {r['stow_segments']} instances; "
          f"pick decision: {r['pick_decision_outcome']}")
    print(f"(the planning floor's target, the frame's largest item, has {r['largest_item_pixels']} pixels)")
    if not r["pick_decision_planned"]:
        print("note: the pick decision stopped before planning, so its time excludes the planning half "
              "(see that floor row)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=Path, default=ROOT / "models", metavar="DIR",
                        help="directory holding segmenter.onnx, pick.onnx, embedding.onnx (default: models/)")
    parser.add_argument("--repeat", type=int, default=30, help="runs per step (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated bin, frame and catalogue")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime intra-op threads (default 1, the cell's config default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if not 1 <= args.threads <= MAX_THREADS:
        parser.error(f"--threads must be in [1, {MAX_THREADS}]")
    try:
        result = run(args.models, args.repeat, args.seed, args.threads)
    except ModelError as exc:  # ContractError included; the message names the file
        print(f"bench/models.py: cannot use the models: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
