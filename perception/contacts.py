"""What the force sensor taught the cell about a bin: footprints where an item met something it could not see.

An eject the force reflex stopped says that an item of that depth does not fit at that footprint: something stands
nearer than the item is deep (a dark product the depth camera gets no return from, an item the band hid). The
camera cannot correct that view by itself, so the cell keeps the contact and the bin's front-face map is capped
by it: at most `free_mm` free over the footprint. A bin forgets its contacts when the cell moves its contents
(a sweep, a pick): what stood there may be gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .common import PerceptionError, frozen
from .occupancy import FrontFaceMap


@dataclass(frozen=True, slots=True)
class Contact:
    """A footprint of the opening (bin frame, mm) and the free depth (mm) the contact leaves there at most."""

    x_mm: float
    y_mm: float
    width_mm: float
    height_mm: float
    free_mm: float

    def __post_init__(self) -> None:
        values = (self.x_mm, self.y_mm, self.width_mm, self.height_mm, self.free_mm)
        if not all(math.isfinite(v) for v in values) or self.width_mm <= 0 or self.height_mm <= 0:
            raise PerceptionError(f"a contact needs finite numbers and a positive footprint, got {values}")


class ContactMemory:
    """Contacts per bin key (the FC's pod and bin ids: a new pod at the station starts clean)."""

    def __init__(self) -> None:
        self._bins: dict[str, list[Contact]] = {}

    def record(self, bin_key: str, contact: Contact) -> None:
        self._bins.setdefault(bin_key, []).append(contact)

    def forget(self, bin_key: str) -> None:
        self._bins.pop(bin_key, None)

    def contacts(self, bin_key: str) -> tuple[Contact, ...]:
        return tuple(self._bins.get(bin_key, ()))

    def cap(self, bin_key: str, fmap: FrontFaceMap) -> FrontFaceMap:
        """`fmap` with every cell a contact's footprint touches at most that contact's free depth."""
        found = self._bins.get(bin_key)
        if not found:
            return fmap
        free = fmap.free_depth.astype(np.float32, copy=True)
        cell_mm = fmap.resolution * 1e3
        rows, cols = free.shape
        for c in found:
            r0, c0 = max(0, math.floor(c.y_mm / cell_mm)), max(0, math.floor(c.x_mm / cell_mm))
            r1 = min(rows, math.ceil((c.y_mm + c.height_mm) / cell_mm))
            c1 = min(cols, math.ceil((c.x_mm + c.width_mm) / cell_mm))
            if r1 > r0 and c1 > c0:
                free[r0:r1, c0:c1] = np.minimum(free[r0:r1, c0:c1], np.float32(max(0.0, c.free_mm) / 1e3))
        return FrontFaceMap(fmap.bin, fmap.resolution, frozen(free), fmap.observed, fmap.counts)


__all__ = ["Contact", "ContactMemory"]
