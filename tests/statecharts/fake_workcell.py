"""A scripted `Workcell` for the cell chart tests: queued results, virtual-time durations, every call recorded."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterable

import anyio
import anyio.lowlevel

from statecharts.workcell import (
    Eligibility,
    EligibilityClass,
    Interlocks,
    ItemArrival,
    Motion,
    MotionOutcome,
    MotionResult,
    PickCandidate,
    PickOrder,
    PickPlan,
    Primitive,
    StowOption,
    StowPlan,
    SweepPlan,
    TaskReport,
    Verification,
)

P = Primitive


def item(n: int = 1) -> ItemArrival:
    return ItemArrival(item_id=f"item-{n}", sku="sku", width_mm=80, height_mm=120, depth_mm=60, mass_kg=0.4)


def order(n: int = 1, bin_id: str = "A1") -> PickOrder:
    return PickOrder(order_id=f"order-{n}", item_id=f"item-{n}", bin_id=bin_id)


def stow_option(bin_id: str = "A1", index: int = 0, *, sweep: bool = False) -> StowOption:
    steps = [Motion(primitive=P.APPROACH, timeout_s=10, force_limit_n=40, backoff_mm=10)]
    plan = None
    if sweep:
        plan = SweepPlan(
            entry_x_mm=10, entry_y_mm=0, direction=1, distance_mm=50, predicted_force_n=8, force_limit_n=25
        )
        steps += [
            Motion(primitive=P.EXTEND_BLADE, timeout_s=5, force_limit_n=30),
            Motion(primitive=P.SWEEP, timeout_s=8),  # the chart takes the sweep plan's limit
        ]
    steps += [Motion(primitive=P.EJECT_ITEM, timeout_s=5), Motion(primitive=P.RETRACT, timeout_s=10)]
    return StowOption(bin_id=bin_id, placement_index=index, x_mm=10.0 * index, y_mm=0, sweep=plan, steps=tuple(steps))


def candidate(index: int, *, release: bool = False) -> PickCandidate:
    steps = [
        Motion(primitive=P.APPROACH, timeout_s=10, force_limit_n=40),
        Motion(primitive=P.ATTACH, timeout_s=3, vacuum_kpa=-40),
        Motion(primitive=P.EXTRACT, timeout_s=10, force_limit_n=60, vacuum_kpa=-30, max_scene_change=0.2),
        Motion(primitive=P.PLACE, timeout_s=10),
    ]
    if release:
        steps.append(Motion(primitive=P.RELEASE, timeout_s=2))
    return PickCandidate(index=index, clearance_mm=20, area_mm2=400, steps=tuple(steps))


class FakeWorkcell:
    """Scripted port. Queues pop one entry per call; an empty queue means success (or nothing)."""

    def __init__(
        self,
        *,
        items: Iterable[ItemArrival] = (),
        orders: Iterable[PickOrder] = (),
        stow_plans: Iterable[StowPlan] = (),
        pick_plan: PickPlan | None = None,
        eligibility: Eligibility | None = None,
        verifications: Iterable[bool] = (),
        move_s: float = 1.0,
        arrival_s: float = 2.0,
    ) -> None:
        self.items = deque(items)
        self.orders = deque(orders)
        self.stow_plans = deque(stow_plans)
        self.pick_plan = pick_plan or PickPlan(candidates=(candidate(0), candidate(1)))
        self.eligibility = eligibility or Eligibility(eligible=True, cls=EligibilityClass.FREE)
        self.verifications = deque(verifications)
        self.outcomes: dict[Primitive, deque[MotionOutcome]] = {}
        self.hook_outcomes: deque[MotionOutcome] = deque()
        self.move_s = move_s
        self.arrival_s = arrival_s
        self.calls: list[tuple[object, ...]] = []
        self.motions: list[Motion] = []
        self.reports: list[TaskReport] = []
        self.report_hangs = 0  # the next N report calls never return (the chart must bound them)
        self._waiters: list[tuple[str, anyio.Event]] = []
        self._interlocks = Interlocks(ok=True)
        self._interlocks_changed = anyio.Event()

    # -- scripting -------------------------------------------------------------------------------------------
    def script(self, primitive: Primitive, *outcomes: MotionOutcome) -> None:
        self.outcomes.setdefault(primitive, deque()).extend(outcomes)

    def set_interlocks(self, ok: bool, detail: str = "") -> None:
        self._interlocks = Interlocks(ok=ok, detail=detail)
        self._interlocks_changed.set()
        self._interlocks_changed = anyio.Event()

    async def called(self, name: str) -> None:
        """Wait until a call named `name` (as in `names()`) has been made."""
        if name not in self.names():
            done = anyio.Event()
            self._waiters.append((name, done))
            await done.wait()

    def _record(self, *call: object) -> None:
        self.calls.append(call)
        name = " ".join(str(part) for part in call)
        for waiter in [w for w in self._waiters if w[0] == name]:
            self._waiters.remove(waiter)
            waiter[1].set()

    def names(self) -> list[str]:
        """Calls as short strings: `move approach`, `hook down`, `report done`, ..."""
        return [" ".join(str(part) for part in call) for call in self.calls]

    # -- the port --------------------------------------------------------------------------------------------
    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        self._record(*("next_item",))
        if not self.items:
            await anyio.sleep(timeout_s)
            return None
        await anyio.sleep(min(self.arrival_s, timeout_s))
        return self.items.popleft()

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        self._record(*("next_order",))
        if not self.orders:
            await anyio.sleep(timeout_s)
            return None
        await anyio.sleep(min(self.arrival_s, timeout_s))
        return self.orders.popleft()

    async def move(self, motion: Motion) -> MotionResult:
        self._record(*("move", motion.primitive.value))
        self.motions.append(motion)
        queue = self.outcomes.get(motion.primitive)
        outcome = queue.popleft() if queue else MotionOutcome.DONE
        await anyio.sleep(self.move_s)
        force = (motion.force_limit_n or 0.0) + 1.0 if outcome is MotionOutcome.FORCE_LIMIT else 0.0
        code = 17 if outcome is MotionOutcome.FAULT else 0
        return MotionResult(outcome=outcome, elapsed_s=self.move_s, peak_force_n=force, fault_code=code)

    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        self._record(*("hook", "down" if down else "up"))
        outcome = self.hook_outcomes.popleft() if self.hook_outcomes else MotionOutcome.DONE
        await anyio.sleep(0.5)
        return MotionResult(outcome=outcome, elapsed_s=0.5)

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        self._record(*("plan_stow", *exclude_bins))
        await anyio.sleep(0.3)
        if len(self.stow_plans) > 1:
            return self.stow_plans.popleft()
        return self.stow_plans[0] if self.stow_plans else StowPlan(options=(stow_option(),))

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        self._record(*("verify_stow", option.bin_id))
        await anyio.sleep(0.2)
        ok = self.verifications.popleft() if self.verifications else True
        return Verification(ok=ok, detail="" if ok else "bin unchanged")

    async def check_pick(self, order: PickOrder) -> Eligibility:
        self._record(*("check_pick",))
        await anyio.sleep(0.2)
        return self.eligibility

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        self._record(*("plan_pick",))
        await anyio.sleep(0.3)
        return self.pick_plan

    async def report(self, report: TaskReport) -> None:
        self._record(*("report", report.outcome.value))
        if self.report_hangs:
            self.report_hangs -= 1
            await anyio.sleep_forever()
        await anyio.lowlevel.checkpoint()
        self.reports.append(report)

    async def halt(self) -> None:
        self._record(*("halt",))
        await anyio.lowlevel.checkpoint()

    async def interlocks(self) -> AsyncIterator[Interlocks]:
        while True:
            changed = self._interlocks_changed
            yield self._interlocks
            await changed.wait()
