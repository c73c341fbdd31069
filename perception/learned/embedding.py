"""The product embedding model's runner: crops -> L2-normalised vectors, batched; cosine matching.

`embed_segments` crops every instance of a frame (perception.learned.preprocess.crop_tensor) and runs them in
batches of at most `max_batch`; `embed_images` does the same for reference images (whole image, or a mask).
`match` compares segment embeddings with a product's reference embeddings by cosine similarity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..common import PerceptionError
from .contracts import CROP, EMBED_DIM
from .preprocess import check_rgb, crop_tensor
from .session import ModelSession


def l2_normalise(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(n, 1e-12)).astype(np.float32)


class Embedder:
    """Runs an `embedding` model (docs/models.md)."""

    def __init__(self, session: ModelSession, *, max_batch: int = 32) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise PerceptionError(f"max_batch must be a positive integer, got {max_batch!r}")
        self.session = session
        self.max_batch = max_batch
        self.match_threshold = session.metadata.match_threshold

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """[N, 3, CROP, CROP] float32 inputs -> [N, EMBED_DIM] unit vectors, in batches of <= max_batch."""
        if crops.dtype != np.float32 or crops.shape[1:] != (3, CROP, CROP):
            raise PerceptionError(f"crops must be float32 [N, 3, {CROP}, {CROP}], got {crops.dtype} {crops.shape}")
        out = np.empty((crops.shape[0], EMBED_DIM), dtype=np.float32)
        for i in range(0, crops.shape[0], self.max_batch):
            out[i : i + self.max_batch] = self.session.run({"crop": crops[i : i + self.max_batch]})["embedding"]
        return l2_normalise(out)  # the model normalises; this removes its float drift

    def embed_segments(self, rgb: np.ndarray, instance: np.ndarray) -> dict[int, np.ndarray]:
        """{label: unit vector} for every label > 0 of an instance image of the frame."""
        if not isinstance(instance, np.ndarray) or instance.ndim != 2 or not np.issubdtype(instance.dtype, np.integer):
            got = f"{getattr(instance, 'dtype', type(instance).__name__)} {getattr(instance, 'shape', '')}"
            raise PerceptionError(f"instance must be an integer (H, W) label image, got {got}")
        c = check_rgb(rgb, instance.shape)
        labels = [int(v) for v in np.unique(instance) if v > 0]
        if not labels:
            return {}
        crops = np.stack([crop_tensor(c, instance == label) for label in labels])
        return dict(zip(labels, self.embed(crops), strict=True))

    def embed_images(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None,
                     ) -> np.ndarray:
        """[N, EMBED_DIM] for reference images (each whole, or cropped to its mask)."""
        if masks is not None and len(masks) != len(images):
            raise PerceptionError(f"{len(masks)} masks for {len(images)} images")
        if not images:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        ms = masks if masks is not None else [None] * len(images)
        return self.embed(np.stack([crop_tensor(im, m) for im, m in zip(images, ms, strict=True)]))

    def identify(self, segments: Mapping[int, np.ndarray], references: np.ndarray,
                 threshold: float | None = None) -> Match:
        """`match` at `threshold`, by default the model's own (its metadata's cellctl.match_threshold)."""
        t = threshold if threshold is not None else self.match_threshold
        if t is None:
            raise PerceptionError("no match threshold: the model carries none and none was given")
        return match(segments, references, t)

    async def embed_segments_async(self, rgb: np.ndarray, instance: np.ndarray) -> dict[int, np.ndarray]:
        return await self.session.call(self.embed_segments, rgb, instance)

    async def embed_images_async(self, images: Sequence[np.ndarray],
                                 masks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        return await self.session.call(self.embed_images, images, masks)


@dataclass(frozen=True, slots=True)
class Match:
    """The segment most like a product's references: `label` is None when none reaches the threshold."""

    label: int | None
    score: float  # the best segment's similarity (-1 when there is no segment)
    scores: dict[int, float]  # label -> its best cosine similarity to any reference
    threshold: float


def match(segments: Mapping[int, np.ndarray], references: np.ndarray, threshold: float) -> Match:
    """The segment with the highest cosine similarity to any of `references` [M, D], accepted at >= threshold."""
    if not -1.0 <= threshold <= 1.0:
        raise PerceptionError(f"match threshold must lie in [-1, 1], got {threshold!r}")
    if references.ndim != 2 or references.shape[0] == 0:
        raise PerceptionError(f"references must be a non-empty [M, D] array, got shape {references.shape}")
    if not segments:
        return Match(None, -1.0, {}, threshold)
    labels = list(segments)
    q = l2_normalise(np.stack([segments[k] for k in labels]).astype(np.float32))
    if q.shape[1] != references.shape[1]:
        raise PerceptionError(f"segment embeddings have {q.shape[1]} dims, references {references.shape[1]}")
    sims = (q @ l2_normalise(references.astype(np.float32)).T).max(axis=1)
    scores = {k: float(s) for k, s in zip(labels, sims, strict=True)}
    best = labels[int(np.argmax(sims))]
    ok = scores[best] >= threshold
    return Match(best if ok else None, scores[best], scores, threshold)
