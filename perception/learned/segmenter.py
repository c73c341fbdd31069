"""The stow-view segmenter's runner: per-pixel classes and item instances at the frame's size.

Results are in the geometric pipeline's types: `classes` uses the renderer's class numbers (0 background,
1 bin structure, 2 band, 3 item), `instance` is an integer label image (0 = none) that
`perception.cloud.segments_from_labels` and `perception.eligibility.classify` take like the renderer's labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cloud import Segment, segments_from_labels
from ..common import check_depth, frozen
from .contracts import STOW_CLASSES
from .instances import decode_instances, keep_threshold
from .preprocess import frame_tensor, resize_bilinear
from .session import ModelSession

BACKGROUND, BIN_STRUCTURE, BAND, ITEM = range(len(STOW_CLASSES))


@dataclass(frozen=True, slots=True, eq=False)
class StowSegmentation:
    classes: np.ndarray  # (H, W) uint8, STOW_CLASSES order
    instance: np.ndarray  # (H, W) int32 item instances, 0 = none, labels 1..N by decreasing score
    scores: dict[int, float]  # label -> object probability

    @property
    def band_mask(self) -> np.ndarray:
        return self.classes == BAND

    def segments(self, depth: np.ndarray, intrinsics: object, *, min_points: int = 1) -> dict[int, Segment]:
        """The instances' 3-D segments (camera frame), as from the renderer's labels."""
        return segments_from_labels(depth, self.instance, intrinsics, min_points=min_points)


class StowSegmenter:
    """Runs a `segmenter` model (docs/models.md) on RGB + depth frames."""

    def __init__(self, session: ModelSession, *, score_threshold: float | None = None, min_pixels: int = 20) -> None:
        self.session = session
        self.score_threshold = keep_threshold(score_threshold, session.metadata.score_threshold)
        self.min_pixels = min_pixels

    def segment(self, rgb: np.ndarray, depth: np.ndarray) -> StowSegmentation:
        d = check_depth(depth)
        out = self.session.run({"image": frame_tensor(rgb, d)})
        h, w = d.shape
        classes = resize_bilinear(out["sem_logits"][0], h, w).argmax(axis=0).astype(np.uint8)
        dec = decode_instances(out["pred_logits"][0], out["pred_masks"][0], (h, w),
                               score_threshold=self.score_threshold, min_pixels=self.min_pixels)
        scores = {i + 1: s for i, s in enumerate(dec.scores)}
        return StowSegmentation(frozen(classes), frozen(dec.instance), scores)

    async def segment_async(self, rgb: np.ndarray, depth: np.ndarray) -> StowSegmentation:
        """`segment` in a worker thread: the event loop keeps running."""
        return await self.session.call(self.segment, rgb, depth)
