"""The simulated FC's product catalogue: reference images of each product, taken elsewhere in the building.

A real FC photographs every product once at receiving, in a booth, under its own lights; a pick order names
the product, and the cell matches those photographs against what its camera sees (issue 13, point 5). Here
the booth is a lone item on the floor of a deep, plain fabric box, framed by a camera close enough that it
fills about half the picture and a little off-centre (so it shows at other scales and angles than in the pod),
each view under lighting drawn from the booth's own generator, never the cell's. The colours come from the
same procedural appearance as the cell's camera (`appearance.product_look`, seeded by the product id), so a
product looks like itself and like no other.

The booth knows its own background, so each reference comes with the product's mask; that is the catalogue's
data, not the cell's perception, which sees only camera frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..camera import Intrinsics
from .appearance import stable_seed
from .camera_view import render_training_view
from .world import Bin, Item, PlacedItem
from .world_render import CameraPose

BOOTH_MM = (420.0, 360.0, 600.0)  # width, height, depth of the booth's box
BOOTH_BAND_MM = 350.0  # the box's (unused) band runs along the top edge, out of the way
MIN_PIXELS = 50  # a reference showing less of its product than this is not kept
FILL = 0.45  # the product's share of the image width in a reference


class CatalogueError(ValueError):
    """A product the booth cannot photograph (too large for it, or not seen)."""


@dataclass(frozen=True, slots=True, eq=False)
class ReferenceImage:
    """One photograph of a product: colour (uint8 H x W x 3) and the product's pixels (bool H x W)."""

    product_id: str
    view: int
    color: np.ndarray
    mask: np.ndarray


class Catalogue:
    """Reference images per product id, `views` each, reproducible from `seed` and the product id."""

    def __init__(self, seed: int = 0, *, views: int = 3, intrinsics: Intrinsics | None = None) -> None:
        if isinstance(views, bool) or not isinstance(views, int) or not 1 <= views <= 16:
            raise CatalogueError(f"views must be an integer in [1, 16], got {views!r}")
        self.seed = seed
        self.views = views
        self.intrinsics = intrinsics or Intrinsics.from_fov(320, 240)
        self._cache: dict[tuple[str, tuple[float, float, float]], tuple[ReferenceImage, ...]] = {}

    def references(self, product_id: str, size_mm: tuple[float, float, float]) -> tuple[ReferenceImage, ...]:
        """The product's reference images (rendered once, then kept)."""
        w, h, d = (round(float(v), 1) for v in size_mm)
        key = (product_id, (w, h, d))
        if key not in self._cache:
            self._cache[key] = tuple(self._photograph(product_id, (w, h, d), view) for view in range(self.views))
        return self._cache[key]

    def _photograph(self, product_id: str, size_mm: tuple[float, float, float], view: int) -> ReferenceImage:
        w, h, d = size_mm
        bw, bh, bd = BOOTH_MM
        if w > bw - 20 or h > BOOTH_BAND_MM - 20 or d > bd - 20:
            raise CatalogueError(f"product {product_id}: {w:.0f}x{h:.0f}x{d:.0f} mm does not fit the booth")
        rng = np.random.default_rng([self.seed, stable_seed(product_id), view])
        x = (bw - w) / 2 + float(rng.uniform(-0.3, 0.3)) * (bw - w - 20) / 2
        z = float(rng.uniform(20.0, 60.0))
        item = PlacedItem(Item(1, product_id, (w, h, d), 0.5, 0.5), (x, 0.0, z))
        booth = Bin(f"booth-{view}", bw, bh, bd, BOOTH_BAND_MM, [item])
        # Framed on the product: it spans about FILL of the image's width, seen a little off-axis.
        k = self.intrinsics
        distance = max(w, h * k.width / k.height) * k.fx / (k.width * FILL) * float(rng.uniform(0.85, 1.15))
        off = (x + w / 2 - bw / 2 + float(rng.uniform(-25.0, 25.0)), h / 2 - bh / 2 + float(rng.uniform(-20.0, 20.0)))
        pose = CameraPose(max(distance - z, 60.0), off)
        frame, truth = render_training_view(booth, self.intrinsics, pose, rng=rng)
        mask = truth.instance == 1
        if int(mask.sum()) < MIN_PIXELS or frame.color is None:
            raise CatalogueError(f"product {product_id}: view {view} shows {int(mask.sum())} pixels of it")
        return ReferenceImage(product_id, view, frame.color, mask)
