"""Renders a bin of the world model as the EOAT depth camera in front of it sees it.

The camera looks +z into the bin from `standoff_mm` in front of the opening, centred on the
opening (plus `offset_mm`). Camera frame: x right, y DOWN, z forward, metres; bin frame: mm, y up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..camera import DepthFrame, Intrinsics
from .camera import Box, render
from .world import Bin

BACKGROUND, WALL, BAND, ITEM = 0, 1, 2, 3


class Opening(Protocol):
    """What a camera pose needs of a bin: its opening's size (mm)."""

    @property
    def width_mm(self) -> float: ...
    @property
    def height_mm(self) -> float: ...
CLASS_NAMES = {BACKGROUND: "background", WALL: "bin wall", BAND: "band", ITEM: "item"}


@dataclass(frozen=True, slots=True)
class CameraPose:
    """Camera at (width/2 + dx, height/2 + dy, -standoff) in the bin frame (mm), looking +z."""

    standoff_mm: float = 350.0
    offset_mm: tuple[float, float] = (0.0, 0.0)

    def origin_mm(self, bin: Opening) -> np.ndarray:
        return np.array([bin.width_mm / 2 + self.offset_mm[0], bin.height_mm / 2 + self.offset_mm[1],
                         -self.standoff_mm])

    def to_camera(self, bin: Opening, points_mm: np.ndarray) -> np.ndarray:
        """Bin-frame points (mm, ..., 3) -> camera-frame points (m)."""
        d = np.asarray(points_mm, dtype=np.float64) - self.origin_mm(bin)
        return np.stack([d[..., 0], -d[..., 1], d[..., 2]], axis=-1) / 1000.0

    def project(self, bin: Opening, points_mm: np.ndarray, k: Intrinsics) -> np.ndarray:
        """Bin-frame points (mm) -> pixel (u, v) (OpenCV convention, pixel centres at integers)."""
        c = self.to_camera(bin, points_mm)
        return np.stack([k.fx * c[..., 0] / c[..., 2] + k.cx, k.fy * c[..., 1] / c[..., 2] + k.cy], axis=-1)


@dataclass(frozen=True, slots=True, eq=False)
class BinView:
    """A rendered view: depth (float32 m, NaN = no hit), instance (int32 item id, 0 = none), cls (uint8)."""

    depth_m: np.ndarray
    instance: np.ndarray
    cls: np.ndarray
    intrinsics: Intrinsics
    pose: CameraPose

    def frame(self, seq: int = 0, timestamp: float = 0.0) -> DepthFrame:
        return DepthFrame(seq, timestamp, self.intrinsics, self.depth_m.copy())

    def visible_item_ids(self, min_pixels: int = 1) -> list[int]:
        ids, counts = np.unique(self.instance[self.instance > 0], return_counts=True)
        return [int(i) for i, c in zip(ids, counts, strict=True) if c >= min_pixels]


def _box(pose: CameraPose, bin: Bin, lo: tuple[float, float, float], hi: tuple[float, float, float], label: int) -> Box:
    a, b = pose.to_camera(bin, np.array([lo, hi], dtype=np.float64))
    return Box(tuple((a + b) / 2), tuple(np.abs(b - a)), label)


def scene_boxes(bin: Bin, pose: CameraPose, *, wall_mm: float = 5.0) -> list[Box]:
    """Camera-frame boxes for the items, band and walls; label = class | item_id << 2."""
    w, h, d, t = bin.width_mm, bin.height_mm, bin.depth_mm, wall_mm
    boxes = [_box(pose, bin, p.lo, p.hi, ITEM | p.item_id << 2) for p in bin.items]  # first: items win ties
    y0, y1 = bin.band_y_mm
    boxes.append(_box(pose, bin, (0.0, y0, -bin.band_thickness_mm), (w, y1, 0.0), BAND))
    for lo, hi in (
        ((-t, -t, 0.0), (w + t, 0.0, d + t)),  # floor
        ((-t, h, 0.0), (w + t, h + t, d + t)),  # ceiling
        ((-t, 0.0, 0.0), (0.0, h, d + t)),  # left
        ((w, 0.0, 0.0), (w + t, h, d + t)),  # right
        ((0.0, 0.0, d), (w, h, d + t)),  # back
    ):
        boxes.append(_box(pose, bin, lo, hi, WALL))
    return boxes


def render_bin(
    bin: Bin, intrinsics: Intrinsics | None = None, pose: CameraPose | None = None, *, wall_mm: float = 5.0
) -> BinView:
    """Depth, instance and class images of `bin` seen from `pose` (default 350 mm in front, centred)."""
    k = intrinsics or Intrinsics.from_fov()
    pose = pose or CameraPose()
    if pose.standoff_mm <= bin.band_thickness_mm:
        raise ValueError(f"standoff {pose.standoff_mm} mm puts the camera inside the bin's band")
    depth, labels = render(scene_boxes(bin, pose, wall_mm=wall_mm), k)
    cls = (labels & 3).astype(np.uint8)
    instance = np.where(cls == ITEM, labels >> 2, 0).astype(np.int32)
    return BinView(depth, instance, cls, k, pose)
