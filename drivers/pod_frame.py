"""The pod frame: where a bin of the presented pod face lies, in the coordinates the robot is commanded in.

Origin at the bottom-left corner of the pod face, x to the right, y up, z into the pod (mm). Bins are
numbered in the layout's order (row 0 is the bottom row; the PLC publishes row-major). A row is as tall as
its tallest bin; a bin's origin is its bottom-left corner on the face.

This is the contract between the controller, which turns a bin-relative target into robot parameters, and
whatever robot executes them (the real cell, or the simulated cell behind Modbus):

- approach   x, y: the face point the tool goes to (stow: the placement's bottom-left corner; pick: the
             suction point); z 0; yaw 90 when the item goes in rotated.
- eject_item, attach, extract: act at the last approach point.
- sweep      x, y_lo, y_hi: blade entry and the height band it pushes; direction -1 (left) or +1 (right).
"""

from __future__ import annotations

from dataclasses import dataclass

from .plc_nodes import BinLayout


@dataclass(frozen=True, slots=True)
class BinPlace:
    index: int
    x0_mm: float
    y0_mm: float
    width_mm: float
    height_mm: float

    def contains(self, x: float, y: float) -> bool:
        return self.x0_mm <= x < self.x0_mm + self.width_mm and self.y0_mm <= y < self.y0_mm + self.height_mm


class PodFrame:
    """Bin origins of one pod face."""

    def __init__(self, layout: BinLayout) -> None:
        self.layout = layout
        row_h = [0.0] * layout.rows
        for b in layout.bins:
            row_h[b.row] = max(row_h[b.row], b.height_mm)
        row_y = [sum(row_h[:r]) for r in range(layout.rows)]
        widths: dict[tuple[int, int], float] = {(b.row, b.column): b.width_mm for b in layout.bins}
        places = []
        for i, b in enumerate(layout.bins):
            x0 = sum(widths[(b.row, c)] for c in range(b.column))
            places.append(BinPlace(i, x0, row_y[b.row], b.width_mm, b.height_mm))
        self.bins: tuple[BinPlace, ...] = tuple(places)

    def bin(self, index: int) -> BinPlace:
        if not 0 <= index < len(self.bins):
            raise ValueError(f"no bin {index} on this pod face (it has {len(self.bins)})")
        return self.bins[index]

    def to_pod(self, index: int, x: float, y: float) -> tuple[float, float]:
        """Bin-relative (x, y) -> pod frame."""
        b = self.bin(index)
        return b.x0_mm + x, b.y0_mm + y

    def locate(self, x: float, y: float) -> tuple[int, float, float] | None:
        """Pod-frame (x, y) -> (bin index, bin-relative x, y), or None off every bin."""
        for b in self.bins:
            if b.contains(x, y):
                return b.index, x - b.x0_mm, y - b.y0_mm
        return None
