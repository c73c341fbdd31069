"""The simulated EOAT camera as a camera gives it: a noisy depth image and a colour image, and nothing else.

`capture(bin, ...)` is what the controller may receive: a `DepthFrame` (depth, colour, intrinsics, seq,
timestamp), which has no label field. `render_training_view(bin, ...)` returns the same frame and, beside it,
a `FrameTruth` (class and instance images, ids, visible fractions, the ideal depth) for training and evaluation
only; the controller's perception must never call it.

The scene is `world_render.scene_boxes` (so the truth's class, instance and ideal depth are exactly
`render_bin`'s). Colours come from `appearance` (per product, walls, band), shaded by a per-frame `Lighting`
(drawn from the generator unless given) and exposed by `lighting.expose`; depth from `sensor_model`.

The band is semi-transparent. Colour: where it lies in front, its radiance is blended over the surface behind it
with its local opacity `appearance.band_alpha` (0.2-0.8, finely knit). Depth: the sensor's matching window
averages the fine knit away, so depth sees the band where its (smooth) `band_density` is at least
BAND_DEPTH_DENSITY: the middle half of its width (about 10 mm of a 20 mm band); through its open edges the
sensor sees the surface behind it.

Randomness: one Generator (or seed) per call; it is split into independent streams for the lighting, the
colour noise and the depth artefacts, so a lighting change (a given `lighting`) leaves the depth image as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import anyio
import numpy as np

from ..camera import DepthFrame, Intrinsics, PeriodicFrameSource
from .appearance import (
    BACKGROUND_RGB,
    BAND_IR_ALBEDO,
    BAND_RGB,
    WALL_LOOK,
    Look,
    band_alpha,
    band_density,
    paint,
    product_look,
)
from .camera import Box
from .lighting import Lighting, expose
from .raycast import FACE_NZ, Surfaces, cast
from .sensor_model import StructuredLight
from .world import Bin
from .world_render import BAND, ITEM, CameraPose, scene_boxes

BAND_DEPTH_DENSITY = 0.6
DEFAULT_SENSOR = StructuredLight()


@dataclass(frozen=True, slots=True, eq=False)
class FrameTruth:
    """Ground truth of one rendered frame: for training and evaluation only, never for the controller.

    `cls` and `instance` are `render_bin`'s: the band's class wherever it lies in front (whatever its density),
    item ids where an item is the first surface. `instance_through_band` ignores the band. `visible_fraction`:
    per item of the bin, the pixels where it is the first surface over the pixels it would cover alone.
    """

    cls: np.ndarray  # uint8 (H, W): world_render.BACKGROUND, WALL, BAND, ITEM
    instance: np.ndarray  # int32 (H, W): item id, 0 = none
    instance_through_band: np.ndarray  # int32 (H, W)
    item_ids: tuple[int, ...]  # items with at least one visible pixel, sorted
    product_ids: dict[int, str]  # item id -> product id, every item in the bin
    visible_fraction: dict[int, float]
    band_alpha: np.ndarray  # float32 (H, W): the band's opacity where it lies in front, 0 elsewhere
    depth_m: np.ndarray  # float32 (H, W): the ideal depth (no sensor model), NaN = nothing
    lighting: Lighting


def capture(bin: Bin, intrinsics: Intrinsics | None = None, pose: CameraPose | None = None, *,
            rng: np.random.Generator | int = 0, lighting: Lighting | None = None,
            sensor: StructuredLight = DEFAULT_SENSOR, seq: int = 0, timestamp: float = 0.0) -> DepthFrame:
    """A camera frame of `bin`: measured depth and colour, no labels."""
    frame, _ = _render(bin, intrinsics, pose, rng, lighting, sensor, seq, timestamp, truth=False)
    return frame


def render_training_view(bin: Bin, intrinsics: Intrinsics | None = None, pose: CameraPose | None = None, *,
                         rng: np.random.Generator | int = 0, lighting: Lighting | None = None,
                         sensor: StructuredLight = DEFAULT_SENSOR, seq: int = 0,
                         timestamp: float = 0.0) -> tuple[DepthFrame, FrameTruth]:
    """For training and evaluation only: the frame `capture` gives for the same arguments, and its truth."""
    frame, truth = _render(bin, intrinsics, pose, rng, lighting, sensor, seq, timestamp, truth=True)
    assert truth is not None
    return frame, truth


class SimEoatCamera(PeriodicFrameSource):
    """A `DepthFrameSource` of `capture` frames: depth and colour of the bin `view()` names, at `rate_hz`.

    `view()` returns the (bin, camera pose) the camera faces now, or None (no frame: e.g. the arm is moving).
    The bin is copied when a frame is taken, so the world may change while it renders. Every frame draws its own
    light and noise from one Generator seeded by `seed`. `threaded=True` renders in a worker thread (real
    time); keep it False under the virtual clock so a run stays deterministic.
    """

    def __init__(self, view: Callable[[], tuple[Bin, CameraPose] | None], intrinsics: Intrinsics | None = None, *,
                 rate_hz: float = 10.0, seed: int = 0, sensor: StructuredLight = DEFAULT_SENSOR,
                 threaded: bool = True) -> None:
        super().__init__("sim_eoat_camera", rate_hz)
        self.view = view
        self.intrinsics = intrinsics or Intrinsics.from_fov()
        self.sensor = sensor
        self.threaded = threaded
        self._rng = np.random.default_rng(seed)

    async def capture(self) -> DepthFrame | None:
        faced = self.view()
        if faced is None:
            return None
        bin, pose = faced
        snapshot = copy.copy(bin)
        snapshot.items = list(bin.items)  # PlacedItem is immutable: a shallow copy of the list is a snapshot
        take = partial(capture, snapshot, self.intrinsics, pose, rng=self._rng, sensor=self.sensor,
                       seq=self.next_seq(), timestamp=anyio.current_time())
        return await anyio.to_thread.run_sync(take) if self.threaded else take()


@lru_cache(maxsize=4096)
def _look(product_id: str) -> Look:
    return product_look(product_id)


def _render(bin: Bin, intrinsics: Intrinsics | None, pose: CameraPose | None, rng: np.random.Generator | int,
            lighting: Lighting | None, sensor: StructuredLight, seq: int, timestamp: float, *,
            truth: bool) -> tuple[DepthFrame, FrameTruth | None]:
    k = intrinsics or Intrinsics.from_fov()
    pose = pose or CameraPose()
    if pose.standoff_mm <= bin.band_thickness_mm:
        raise ValueError(f"standoff {pose.standoff_mm} mm puts the camera inside the bin's band")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    light_rng, color_rng, depth_rng = gen.spawn(3)
    light = lighting if lighting is not None else Lighting.sample(light_rng)
    boxes = scene_boxes(bin, pose)
    rest_boxes = [b for b in boxes if b.label & 3 != BAND]
    band_boxes = [b for b in boxes if b.label & 3 == BAND]
    rest, band = cast(rest_boxes, k), cast(band_boxes, k)
    products = {p.item_id: p.item.product_id for p in bin.items}

    refl, ir = _reflectance(rest, rest_boxes, products)
    radiance = light.shade(refl, rest.face)
    on_band = band.depth < rest.depth
    alpha = np.zeros(on_band.shape, dtype=np.float32)
    z, cos = rest.depth, rest.cos_incidence
    if on_band.any():
        bs, bt, bh = band.s[on_band], band.t[on_band], band.face_h[on_band]
        alpha[on_band] = a = band_alpha(bs, bt, bh)
        behind = radiance[:, on_band]
        band_radiance = light.shade(np.broadcast_to(BAND_RGB.astype(np.float32)[:, None], behind.shape),
                                    band.face[on_band])
        radiance[:, on_band] = behind + a * (band_radiance - behind)
        solid = np.zeros(on_band.shape, dtype=bool)
        solid[on_band] = band_density(bt, bh) >= BAND_DEPTH_DENSITY
        z, cos, ir = z.copy(), cos.copy(), ir.copy()
        z[solid], cos[solid], ir[solid] = band.depth[solid], band.cos_incidence[solid], BAND_IR_ALBEDO
    color = expose(radiance, color_rng)
    depth = sensor.apply(z, cos, ir, k, depth_rng)
    frame = DepthFrame(seq, timestamp, k, depth, color)
    return frame, (_truth(rest, band, on_band, alpha, rest_boxes, products, light) if truth else None)


def _reflectance(rest: Surfaces, boxes: list[Box], products: dict[int, str]) -> tuple[np.ndarray, np.ndarray]:
    looks = [_look(products[b.label >> 2]) if b.label & 3 == ITEM else WALL_LOOK for b in boxes]
    return paint(looks, rest.box, rest.windows, rest.s, rest.t, rest.face_w, rest.face_h, rest.face == FACE_NZ,
                 BACKGROUND_RGB)


def _truth(rest: Surfaces, band: Surfaces, on_band: np.ndarray, alpha: np.ndarray, boxes: list[Box],
           products: dict[int, str], light: Lighting) -> FrameTruth:
    labels = np.array([b.label for b in boxes] or [0], dtype=np.int64)
    lab = np.where(rest.hit, labels[np.maximum(rest.box, 0)], 0)
    cls_rest = (lab & 3).astype(np.uint8)
    through = np.where(cls_rest == ITEM, lab >> 2, 0).astype(np.int32)
    cls = np.where(on_band, np.uint8(BAND), cls_rest).astype(np.uint8)
    instance = np.where(on_band, 0, through).astype(np.int32)
    ids, counts = np.unique(instance[instance > 0], return_counts=True)
    seen = {int(i): int(c) for i, c in zip(ids, counts, strict=True)}
    alone = {int(b.label >> 2): int(n) for b, n in zip(boxes, rest.footprint_px, strict=True)
             if b.label & 3 == ITEM}
    visible = {i: (seen.get(i, 0) / alone[i] if alone.get(i) else 0.0) for i in products}
    depth = np.where(on_band, band.depth, rest.depth)
    depth[~np.isfinite(depth)] = np.nan
    return FrameTruth(cls, instance, through, tuple(sorted(seen)), dict(products), visible,
                      alpha.astype(np.float32), depth.astype(np.float32), light)
