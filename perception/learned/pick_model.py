"""The pick model's runner: item instances with a status each (not item / free / below / blocked).

Results are in the geometric pipeline's types: `instance` is an integer label image (0 = none) for
`perception.cloud.segments_from_labels`, and `eligibility()` gives `perception.eligibility.Eligibility` records
keyed by label, as `perception.eligibility.classify` does from depth geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cloud import Segment, segments_from_labels
from ..common import check_depth, frozen
from ..eligibility import Eligibility, Kind
from .contracts import STATUS_CLASSES
from .instances import decode_instances, keep_threshold, softmax
from .preprocess import frame_tensor
from .session import ModelSession


@dataclass(frozen=True, slots=True)
class PickInstance:
    label: int
    score: float  # object probability
    status: Kind  # argmax of the status head
    status_probs: tuple[float, float, float, float]  # STATUS_CLASSES order
    pixels: int  # mask pixels at the frame's size


@dataclass(frozen=True, slots=True, eq=False)
class PickSegmentation:
    instance: np.ndarray  # (H, W) int32, 0 = none, labels 1..N by decreasing score
    instances: dict[int, PickInstance]

    def segments(self, depth: np.ndarray, intrinsics: object, *, min_points: int = 1) -> dict[int, Segment]:
        return segments_from_labels(depth, self.instance, intrinsics, min_points=min_points)

    def eligibility(self, depth: np.ndarray, intrinsics: object) -> dict[int, Eligibility]:
        """Every instance's status as an Eligibility (pixels and bounds from its valid depth; none: 0 and None)."""
        segs = self.segments(depth, intrinsics)
        out = {}
        for label, inst in self.instances.items():
            s = segs.get(label)
            bounds = None if s is None else (tuple(s.lower.tolist()), tuple(s.upper.tolist()))
            p = inst.status_probs[STATUS_CLASSES.index(inst.status)]
            out[label] = Eligibility(label, inst.status, f"status head: {inst.status} (p={p:.2f})",
                                     pixels=0 if s is None else s.size, bounds=bounds)  # type: ignore[arg-type]
        return out


class PickModel:
    """Runs a `pick` model (docs/models.md) on RGB + depth frames."""

    def __init__(self, session: ModelSession, *, score_threshold: float | None = None, min_pixels: int = 20) -> None:
        self.session = session
        self.score_threshold = keep_threshold(score_threshold, session.metadata.score_threshold)
        self.min_pixels = min_pixels

    def segment(self, rgb: np.ndarray, depth: np.ndarray) -> PickSegmentation:
        d = check_depth(depth)
        out = self.session.run({"image": frame_tensor(rgb, d)})
        dec = decode_instances(out["pred_logits"][0], out["pred_masks"][0], d.shape,
                               score_threshold=self.score_threshold, min_pixels=self.min_pixels)
        probs = softmax(out["pred_status"][0])
        instances = {}
        for i, (q, score, pixels) in enumerate(zip(dec.queries, dec.scores, dec.pixels, strict=True)):
            p = tuple(float(v) for v in probs[q])
            instances[i + 1] = PickInstance(i + 1, score, STATUS_CLASSES[int(np.argmax(probs[q]))],
                                            p, pixels)  # type: ignore[arg-type]
        return PickSegmentation(frozen(dec.instance), instances)

    async def segment_async(self, rgb: np.ndarray, depth: np.ndarray) -> PickSegmentation:
        """`segment` in a worker thread: the event loop keeps running."""
        return await self.session.call(self.segment, rgb, depth)
