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
from .preprocess import resample, taps


def keep_threshold(given: float | None, metadata_threshold: float | None) -> float:
    """A query's keep threshold: the caller's, else the model file's (cellctl.score_threshold), else 0.5."""
    return given if given is not None else metadata_threshold if metadata_threshold is not None else 0.5


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
    best = np.zeros((h, w), dtype=np.float32)  # the winning score * sigmoid so far (0: no query)
    owner = np.full((h, w), -1, dtype=np.intp)
    mh, mw = pred_masks.shape[1:]
    ty, tx = taps(h, mh), taps(w, mw)
    for i, q in enumerate(keep):
        window = _window(pred_masks[q] > 0, (h, w))
        if window is None:
            continue
        (y0, y1), (x0, x1) = window
        logits = resample(pred_masks[q], tuple(t[y0:y1] for t in ty), tuple(t[x0:x1] for t in tx))
        weight = np.where(logits > 0, np.float32(scores[q]) / (1.0 + np.exp(-logits)), np.float32(0.0))
        win = best[y0:y1, x0:x1]
        wins = weight > win
        win[wins] = weight[wins]
        owner[y0:y1, x0:x1][wins] = i
    counts = np.bincount(owner[owner >= 0], minlength=keep.size)
    labels = np.zeros(keep.size + 1, dtype=np.int32)  # by owner + 1 (0: no owner)
    kept: list[int] = []
    for i in range(keep.size):
        if counts[i] >= min_pixels:
            kept.append(i)
            labels[i + 1] = len(kept)
    instance[:] = labels[owner + 1]
    return DecodedInstances(instance, tuple(int(keep[i]) for i in kept), tuple(float(scores[keep[i]]) for i in kept),
                            tuple(int(counts[i]) for i in kept))


def _window(positive: np.ndarray, frame_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The frame rows and columns where a mask's upsampled logits can be > 0: samples within one mask cell of
    its positive cells (a bilinear sample between two cells that are both <= 0 is <= 0)."""
    rows, cols = np.flatnonzero(positive.any(axis=1)), np.flatnonzero(positive.any(axis=0))
    if rows.size == 0:
        return None
    out = []
    for (lo, hi), n_in, n_out in (((rows[0], rows[-1]), positive.shape[0], frame_hw[0]),
                                  ((cols[0], cols[-1]), positive.shape[1], frame_hw[1])):
        scale = n_out / n_in  # sample y has source coordinate (y + 0.5) / scale - 0.5
        a = max(0, int(np.floor((lo - 0.5) * scale - 0.5)))
        b = min(n_out, int(np.ceil((hi + 1.5) * scale - 0.5)) + 1)
        out.append((a, b))
    return out[0], out[1]
