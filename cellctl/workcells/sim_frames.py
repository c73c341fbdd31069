"""The simulated cell's EOAT camera frames and its FC's product images, for learned perception.

`sim_learned_perception(cell, models)` is `LearnedPerception` on the simulated cell: its pod (`SimPod`), camera
and catalogue, and nothing else of its world.

`SimBinCamera.capture(bin)` is `drivers.sim.camera_view.capture`: depth with the structured-light sensor's
artefacts and colour under a light drawn per frame, no labels. `SimReferences` is the simulated FC's catalogue
(`drivers.sim.catalogue`): a product's reference images, photographed in a booth elsewhere in the building; the
FC knows each product's dimensions, here from the world's items of that product.
"""

from __future__ import annotations

import numpy as np

from drivers.camera import DepthFrame, Intrinsics
from drivers.sim.camera_view import capture
from drivers.sim.catalogue import Catalogue, CatalogueError
from drivers.sim.cell import SimCell
from drivers.sim.world import Bin, Item
from drivers.sim.world_render import CameraPose
from statecharts.workcell import Motion

from .learned_perception import LearnedModels, LearnedPerception
from .planning_perception import CameraConfig
from .pod_layout import BinDims
from .sim_perception import SimPod

__all__ = ["SimBinCamera", "SimReferences", "sim_learned_perception"]


def sim_learned_perception(cell: SimCell, models: LearnedModels, config: CameraConfig | None = None,
                           ) -> LearnedPerception:
    """Learned perception of the simulated cell: the models on its EOAT camera's frames, its FC's catalogue."""
    cfg = config or CameraConfig()
    k = Intrinsics.from_fov(cfg.width, cfg.height, cfg.hfov_deg)
    return LearnedPerception(SimPod(cell), models, SimBinCamera(cell, k, CameraPose(standoff_mm=cfg.standoff_mm)),
                             SimReferences(cell), cfg)


class SimBinCamera:
    """The EOAT camera of the simulated cell at the cell's pose, one light and noise stream from the cell's seed."""

    def __init__(self, cell: SimCell, intrinsics: Intrinsics, pose: CameraPose) -> None:
        self.cell = cell
        self.intrinsics = intrinsics
        self.pose = pose
        self.rng = np.random.default_rng([cell.seed, 11])
        self.seq = 0

    def moved(self, motion: Motion) -> None:
        """Every capture renders the world anew: nothing kept, nothing to drop."""

    def capture(self, b: BinDims) -> DepthFrame:
        world = b if isinstance(b, Bin) else self.cell.pod.bin(b.bin_id)
        self.seq += 1
        return capture(world, self.intrinsics, self.pose, rng=self.rng, seq=self.seq)


class SimReferences:
    """Reference images of a product from the simulated FC's catalogue ((RGB, mask) per view; none if the product
    is unknown or too large for the booth)."""

    def __init__(self, cell: SimCell, catalogue: Catalogue | None = None) -> None:
        self.cell = cell
        self.catalogue = catalogue or Catalogue(cell.seed)

    def _product(self, product_id: str) -> Item | None:
        c = self.cell
        items = [p.item for b in c.pod.bins for p in b.items] + c.tote + [i for i in (c.held, c.arriving) if i]
        return next((i for i in items if i.product_id == product_id), None)

    def size_mm(self, product_id: str) -> tuple[float, float, float] | None:
        item = self._product(product_id)
        return None if item is None else item.size_mm

    def references(self, product_id: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
        item = self._product(product_id)
        if item is None:
            return []
        try:
            refs = self.catalogue.references(product_id, item.size_mm)
        except CatalogueError:
            return []
        return [(r.color, r.mask) for r in refs]
