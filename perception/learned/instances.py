"""Query-based instance outputs (pred_logits, pred_masks) -> an instance label image at the frame's size.

Per query q: the object probability is softmax(pred_logits[q])[0] (the last column is "no object"); queries
below `score_threshold` are dropped. The kept queries' mask logits are upsampled bilinearly to the frame (the
mask grid spans the whole frame, as the input did) and a pixel goes to the kept query maximising
score * sigmoid(mask logit) among those whose logit is > 0 (probability > 0.5). Instances are labelled 1..N in
order of decreasing score; one left with fewer than `min_pixels` pixels is dropped (and its pixels are 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common import PerceptionError
from .preprocess import resize_bilinear


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(frozen=True, slots=True, eq=False)
class DecodedInstances:
    instance: np.ndarray  # (H, W) int32, 0 = none, else the label
    queries: tuple[int, ...]  # the query of label i + 1
    scores: tuple[float, ...]  # the object probability of label i + 1
    pixels: tuple[int, ...]  # pixels of label i + 1 in `instance`


def decode_instances(pred_logits: np.ndarray, pred_masks: np.ndarray, frame_hw: tuple[int, int], *,
                     score_threshold: float = 0.5, min_pixels: int = 20) -> DecodedInstances:
    """One sample's instances: pred_logits (Q, 2), pred_masks (Q, h, w) -> labels at `frame_hw`."""
    if pred_logits.ndim != 2 or pred_masks.ndim != 3 or pred_logits.shape[0] != pred_masks.shape[0]:
        raise PerceptionError(f"pred_logits {pred_logits.shape} and pred_masks {pred_masks.shape} do not match")
    if not 0.0 < score_threshold < 1.0:
        raise PerceptionError(f"score_threshold must lie in (0, 1), got {score_threshold!r}")
    h, w = frame_hw
    scores = softmax(pred_logits)[:, 0]
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(-scores[keep], kind="stable")]
    instance = np.zeros((h, w), dtype=np.int32)
    if keep.size == 0:
        return DecodedInstances(instance, (), (), ())
    logits = resize_bilinear(pred_masks[keep].astype(np.float32, copy=False), h, w)  # (K, H, W)
    weight = scores[keep].astype(np.float32)[:, None, None] / (1.0 + np.exp(-logits))
    weight = np.where(logits > 0, weight, np.float32(-1.0))
    best = weight.argmax(axis=0)
    owned = weight.max(axis=0) > 0
    counts = np.bincount(best[owned], minlength=keep.size)
    labels = np.zeros(keep.size, dtype=np.int32)
    kept: list[int] = []
    for i in range(keep.size):
        if counts[i] >= min_pixels:
            kept.append(i)
            labels[i] = len(kept)
    instance[owned] = labels[best[owned]]
    return DecodedInstances(instance, tuple(int(keep[i]) for i in kept), tuple(float(scores[keep[i]]) for i in kept),
                            tuple(int(counts[i]) for i in kept))
