"""The pod at the station as perception plans on it: the pod's id and its bins' geometry, never their contents.

`PodLayout` is what `PlanningPerception` reads: the simulated cell's pod (`SimPod`), or the pod the PLC presents
(`PlcPod`: its PodId and BinLayout, the bins named as the FC names them, `bin_name`; `CurrentPod`: whichever
the PLC presents now). A bin's index is its
place in the layout's order, the index the robot's pod frame (`drivers.pod_frame`) numbers it by.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from drivers.plc_nodes import PodState

__all__ = ["BinDims", "BinFace", "CurrentPod", "PlcPod", "PodLayout", "PodLayoutError", "bin_name"]


class PodLayoutError(LookupError):
    """A bin id or index the presented pod does not have."""


class BinDims(Protocol):
    """A bin's id and inside dimensions (mm): all planning needs of it."""

    @property
    def bin_id(self) -> str: ...
    @property
    def width_mm(self) -> float: ...
    @property
    def height_mm(self) -> float: ...
    @property
    def depth_mm(self) -> float: ...


class PodLayout(Protocol):
    """The presented pod: its id and bins, by id and by index."""

    @property
    def pod_id(self) -> str: ...
    @property
    def bins(self) -> Sequence[BinDims]: ...
    def bin(self, bin_id: str) -> BinDims: ...
    def bin_index(self, bin_id: str) -> int: ...
    def bin_at(self, index: float) -> BinDims: ...


@dataclass(frozen=True, slots=True)
class BinFace:
    bin_id: str
    width_mm: float
    height_mm: float
    depth_mm: float


def bin_name(pod_id: str, row: int, column: int) -> str:
    """The FC's name of a bin: pod id, row (0 at the bottom), column letter(s) (A, B, ..., Z, AA, ...)."""
    letters = ""
    c = column
    while True:
        letters = chr(ord("A") + c % 26) + letters
        c = c // 26 - 1
        if c < 0:
            break
    return f"{pod_id}-{row}{letters}"


class PlcPod:
    """The pod of one `PodState` the PLC published (bins in its BinLayout's order)."""

    def __init__(self, state: PodState) -> None:
        self.state = state
        self._bins = tuple(BinFace(bin_name(state.pod_id, b.row, b.column), b.width_mm, b.height_mm, b.depth_mm)
                           for b in state.layout.bins)
        self._index = {b.bin_id: i for i, b in enumerate(self._bins)}

    @property
    def pod_id(self) -> str:
        return self.state.pod_id

    @property
    def bins(self) -> Sequence[BinFace]:
        return self._bins

    def bin(self, bin_id: str) -> BinFace:
        return self._bins[self.bin_index(bin_id)]

    def bin_index(self, bin_id: str) -> int:
        try:
            return self._index[bin_id]
        except KeyError:
            raise PodLayoutError(f"no bin {bin_id!r} in pod {self.pod_id} (it has "
                                 f"{', '.join(self._index) or 'none'})") from None

    def bin_at(self, index: float) -> BinFace:
        i = int(index)
        if i != index or not 0 <= i < len(self._bins):
            raise PodLayoutError(f"no bin with index {index!r} in pod {self.pod_id} ({len(self._bins)} bins)")
        return self._bins[i]


class CurrentPod:
    """The pod the PLC presents now, as a `PodLayout`: `follow(get)` names where its `PodState` is read (the PLC
    client's last value); PodLayoutError while no pod is presented."""

    def __init__(self, get: Callable[[], PodState | None] | None = None) -> None:
        self._get = get
        self._pod: PlcPod | None = None

    def follow(self, get: Callable[[], PodState | None]) -> None:
        self._get, self._pod = get, None

    def now(self) -> PlcPod:
        state = self._get() if self._get is not None else None
        if state is None:
            raise PodLayoutError("no pod presented at the station (PLC)")
        if self._pod is None or self._pod.state is not state:
            self._pod = PlcPod(state)
        return self._pod

    @property
    def pod_id(self) -> str:
        return self.now().pod_id

    @property
    def bins(self) -> Sequence[BinFace]:
        return self.now().bins

    def bin(self, bin_id: str) -> BinFace:
        return self.now().bin(bin_id)

    def bin_index(self, bin_id: str) -> int:
        return self.now().bin_index(bin_id)

    def bin_at(self, index: float) -> BinFace:
        return self.now().bin_at(index)
