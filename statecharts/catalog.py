"""The charts `cellctl chart ...` knows, by name, with the data each runs on.

The cell's charts need a `Workcell`; for `chart simulate` they get `IdleWorkcell`, a cell with nothing to
do (no items, no orders, interlocks ok, every motion done at once), so a simulation shows the mode logic:
tasks wait, starve, and the cell suspends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio.lowlevel

from . import cell, demo, pick, stow
from .engine import Chart
from .workcell import (
    Eligibility,
    EligibilityClass,
    Interlocks,
    ItemArrival,
    Motion,
    MotionOutcome,
    MotionResult,
    PickOrder,
    PickPlan,
    StowOption,
    StowPlan,
    TaskReport,
    Verification,
)


class IdleWorkcell:
    """A `Workcell` with no work: waits run out, plans are empty, motions succeed at once."""

    def __init__(self) -> None:
        self.reports: list[TaskReport] = []

    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        await anyio.sleep(timeout_s)
        return None

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        await anyio.sleep(timeout_s)
        return None

    async def move(self, motion: Motion) -> MotionResult:
        await anyio.lowlevel.checkpoint()
        return MotionResult(outcome=MotionOutcome.DONE, elapsed_s=0.0)

    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        await anyio.lowlevel.checkpoint()
        return MotionResult(outcome=MotionOutcome.DONE, elapsed_s=0.0)

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        return StowPlan(reason="idle workcell: no pod")

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        return Verification(ok=False, detail="idle workcell")

    async def check_pick(self, order: PickOrder) -> Eligibility:
        return Eligibility(eligible=False, cls=EligibilityClass.NOT_FOUND, detail="idle workcell")

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        return PickPlan(reason="idle workcell: no pod")

    async def report(self, report: TaskReport) -> None:
        self.reports.append(report)

    async def halt(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def interlocks(self) -> AsyncIterator[Interlocks]:
        yield Interlocks(ok=True, detail="idle workcell")
        await anyio.sleep_forever()


@dataclass(frozen=True)
class Entry:
    build: Callable[[], Chart]
    data: Callable[[], Any] = lambda: None


CHARTS: dict[str, Entry] = {
    "stow_demo": Entry(demo.build, demo.DemoData),
    "cell": Entry(cell.build, lambda: cell.CellData(IdleWorkcell())),
    "stow": Entry(stow.build, lambda: stow.StowData(IdleWorkcell(), task_id="stow-sim")),
    "pick": Entry(pick.build, lambda: pick.PickData(IdleWorkcell(), task_id="pick-sim")),
}


def names() -> list[str]:
    return sorted(CHARTS)


def entry(name: str) -> Entry:
    try:
        return CHARTS[name]
    except KeyError:
        raise KeyError(f"no chart named {name!r}; known charts: {', '.join(names())}") from None


def load(name: str) -> Chart:
    return entry(name).build()
