"""Held-out metrics of an exported model (issue 13, acceptance), computed from the ONNX file on onnxruntime.

numpy only: the file is opened with `perception.learned.session.open_model` (so it is contract-checked first) and
run on views from `perception.train.dataset`. Everything is measured at the contract's mask grid (72 x 96) against
the data set's targets there.

- segmenter: `miou`, the mean over the four stow classes of the classes' IoU (pixels of all views pooled), and
  `instance_recall_50`, the share of item instances that some predicted instance covers at IoU >= 0.5.
- pick: `instance_recall_50` over all segments (items and the not-item band), `status_accuracy`, the share of
  those recalled segments whose predicted status (argmax of `pred_status`) is the true one.
- embedding: `top1`, each cell crop identified among `n_products` products (its own and others, each by its
  best-scoring reference), and `false_accept_rate`, the share of (crop, other product) scores at or above the
  match threshold; `true_accept_rate` the share of (crop, own product) scores at or above it.

A report is a JSON file beside the model (`write_report`): the metrics, the held-out seeds and the counts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..learned.contracts import STOW_CLASSES
from ..learned.instances import softmax
from ..learned.session import ModelSession, open_model

SCORE_THRESHOLD = 0.5


def grid_instances(pred_logits: np.ndarray, pred_masks: np.ndarray,
                   threshold: float = SCORE_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """One image's (Q, 2) logits and (Q, h, w) mask logits -> (label image at the grid, 1 + query index, 0 none;
    the kept query indices). A pixel goes to the kept query with the highest score x sigmoid, as the runners do."""
    scores = softmax(pred_logits.astype(np.float64))[:, 0]
    keep = np.flatnonzero(scores >= threshold)
    labels = np.zeros(pred_masks.shape[1:], dtype=np.int64)
    if keep.size:
        m = pred_masks[keep].astype(np.float64)
        weight = scores[keep, None, None] / (1.0 + np.exp(-m))
        best = weight.argmax(axis=0)
        inside = np.take_along_axis(m, best[None], 0)[0] > 0
        labels[inside] = keep[best[inside]] + 1
    return labels, keep


def _matches(labels: np.ndarray, masks: np.ndarray, objects: np.ndarray) -> dict[int, int]:
    """True query index -> predicted query index covering it at IoU >= 0.5 (at most one can)."""
    out: dict[int, int] = {}
    for t in np.flatnonzero(objects):
        truth = masks[t]
        ids, counts = np.unique(labels[truth & (labels > 0)], return_counts=True)
        for i, inter in zip(ids, counts, strict=True):
            union = int(truth.sum()) + int((labels == i).sum()) - int(inter)
            if inter / union >= 0.5:
                out[int(t)] = int(i) - 1
    return out


def _run(model: ModelSession, images: np.ndarray, batch: int = 8) -> dict[str, np.ndarray]:
    outs: dict[str, list[np.ndarray]] = {}
    for k in range(0, len(images), batch):
        for name, v in model.run({"image": images[k:k + batch]}).items():
            outs.setdefault(name, []).append(v)
    return {n: np.concatenate(v) for n, v in outs.items()}


def evaluate_segmentation(path: str | Path, kind: str, data: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The metrics of a segmenter or pick model on views `data` (a dataset split's arrays)."""
    model = open_model(path, kind)
    out = _run(model, data["image"])
    status_target = data["query_status"]
    objects = data["query_class"] == 0
    if kind == "segmenter":
        objects = objects & (status_target != 0)  # items only
    found = total = right = 0
    inter = np.zeros(len(STOW_CLASSES))
    union = np.zeros(len(STOW_CLASSES))
    for i in range(len(data["image"])):
        labels, _ = grid_instances(out["pred_logits"][i], out["pred_masks"][i])
        matched = _matches(labels, data["query_masks"][i], objects[i])
        found += len(matched)
        total += int(objects[i].sum())
        if kind == "pick":
            right += sum(int(out["pred_status"][i, p].argmax() == status_target[i, t]) for t, p in matched.items())
        else:
            sem = out["sem_logits"][i].argmax(axis=0)
            for c in range(len(STOW_CLASSES)):
                a, b = sem == c, data["sem"][i] == c
                inter[c] += (a & b).sum()
                union[c] += (a | b).sum()
    metrics = {"instance_recall_50": found / total if total else 0.0}
    if kind == "pick":
        metrics["status_accuracy"] = right / found if found else 0.0
    else:
        present = union > 0
        metrics["miou"] = float((inter[present] / union[present]).mean()) if present.any() else 0.0
    return metrics


def product_scores(cells: np.ndarray, refs: np.ndarray, ref_group: np.ndarray, n_groups: int) -> np.ndarray:
    """[N, n_groups] cosine scores: per cell embedding, its best similarity to each group's references."""
    sim = cells @ refs.T
    out = np.full((len(cells), n_groups), -np.inf)
    for g in range(n_groups):
        cols = ref_group == g
        if cols.any():
            out[:, g] = sim[:, cols].max(axis=1)
    return out


def choose_threshold(scores: np.ndarray, own: np.ndarray, far: float = 0.01) -> float:
    """The lowest cosine threshold whose false-accept rate (other products' scores at or above it) is <= far."""
    neg = np.sort(scores[~own & np.isfinite(scores)])
    if not neg.size:
        return 0.5
    k = int(np.ceil((1.0 - far) * len(neg))) - 1
    return float(min(max(neg[min(k, len(neg) - 1)] + 1e-6, -0.999), 1.0))


def embedding_metrics(scores: np.ndarray, truth: np.ndarray, threshold: float) -> dict[str, float]:
    """top1, false/true accept rates at `threshold` from [N, G] scores and each row's true group."""
    own = np.zeros_like(scores, dtype=bool)
    own[np.arange(len(truth)), truth] = True
    valid = np.isfinite(scores)
    return {"top1": float((scores.argmax(axis=1) == truth).mean()),
            "false_accept_rate": float((scores[~own & valid] >= threshold).mean()),
            "true_accept_rate": float((scores[own] >= threshold).mean())}


def evaluate_embedding(path: str | Path, data: Mapping[str, np.ndarray], threshold: float,
                       n_products: int = 50) -> dict[str, float]:
    """Metrics over the first `n_products` distinct products of `data`'s cell crops (one crop each)."""
    model = open_model(path, "embedding")
    products = list(dict.fromkeys(str(p) for p in data["cell_products"]))[:n_products]
    index = {p: g for g, p in enumerate(products)}
    first = [next(i for i, q in enumerate(data["cell_products"]) if q == p) for p in products]
    rows = [i for i, q in enumerate(data["ref_products"]) if str(q) in index]
    embed = _embedder(model)
    scores = product_scores(embed(data["cell_crops"][first]), embed(data["ref_crops"][rows]),
                            np.array([index[str(data["ref_products"][i])] for i in rows]), len(products))
    return {**embedding_metrics(scores, np.arange(len(products)), threshold), "products": float(len(products))}


def _embedder(model: ModelSession, batch: int = 32) -> Callable[[np.ndarray], np.ndarray]:
    def embed(crops: np.ndarray) -> np.ndarray:
        parts = [model.run({"crop": crops[k:k + batch]})["embedding"] for k in range(0, len(crops), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, 128), np.float32)
    return embed


def write_report(model_path: str | Path, metrics: Mapping[str, float], *, kind: str, seed: int, data_size: int,
                 heldout_seeds: Sequence[int], extra: Mapping[str, object] | None = None) -> Path:
    """`<model>.report.json` beside the model."""
    p = Path(model_path)
    report = {"model": p.name, "kind": kind, "training_seed": seed, "data_size": data_size,
              "heldout_seeds": [min(heldout_seeds), max(heldout_seeds)] if heldout_seeds else [],
              "heldout_views": len(heldout_seeds), "metrics": dict(metrics), **(extra or {})}
    out = p.with_suffix(".report.json")
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return out


def status_agreement(path: str | Path, seeds: Sequence[int], min_pixels: int = 20) -> dict[str, float]:
    """The pick model's status against the ground truth on every visible item of the views `seeds` (an item no
    predicted segment covers at IoU >= 0.5 counts as wrong), beside the oracle path's (the depth rules of
    `perception.eligibility.classify` on the renderer's labels) on the same frames and items."""
    from drivers.sim.world import ground_truth_eligibility

    from ..eligibility import classify
    from ..learned.pick_model import PickModel
    from .dataset import scene

    model = PickModel(open_model(path, "pick"))
    n = learned = oracle = 0
    for seed in seeds:
        bin, frame, truth = scene(int(seed))
        assert frame.color is not None
        gt = ground_truth_eligibility(bin)
        seg = model.segment(frame.color, frame.depth)
        rules = classify(frame.depth, truth.instance, frame.intrinsics)
        for item in truth.item_ids:
            mask = truth.instance == item
            if int(mask.sum()) < min_pixels:
                continue
            n += 1
            oracle += int(item in rules and rules[item].kind == gt[item])
            ids, counts = np.unique(seg.instance[mask & (seg.instance > 0)], return_counts=True)
            for label, inter in zip(ids, counts, strict=True):
                union = int(mask.sum()) + int((seg.instance == label).sum()) - int(inter)
                if inter / union >= 0.5:
                    learned += int(seg.instances[int(label)].status == gt[item])
    return {"items": float(n), "learned_status_agreement": learned / n if n else 0.0,
            "oracle_status_agreement": oracle / n if n else 0.0}
