"""The cell's reports, the FC's orders and the task journal, through the durable store (`cellctl.fc.store`).

    chart ─► ReportingWorkcell ─► RecordingWorkcell (event log) ─► DriverWorkcell ─► FcOrders (next_order)
                  │ report: commit first, then the FC, then the log        │ on_item: journal, then the PLC ack
                  ▼                                                        ▼
              CellStore (outbox, journal) ◄──────────────────────────── StowJournal

- `ReportingWorkcell.report` commits the report to the outbox (an fsync, in a worker thread) before the event log
  or the FC hears of it; then `on_committed(entry)` tells the FC server. A pick's report goes out under the FC's
  task id (its request's), the chart's own task id in the payload; a stow's under the chart's (boot-prefixed) id.
  The FC is told before the log (the inner port): its event does not wait for the log's write.
  Each primitive is noted in the journal before it starts: after a crash, the last known location.
- The outbox is bounded: at `full` no new item or order is taken and `on_full(text)` raises the alarm; a report of
  a task already running still goes in (the store's headroom); beyond that `report` waits, alarmed, for room.
- `FcOrders` is the `OrderSource` of a pick run: the FC's queued requests, oldest first.
- `next_item` cancelled (a hold, a stop): the task ends without its item, so its journal entry goes.
  `next_order` cancelled after the store took a request: the request goes back to the queue, in its old place.
- `StowJournal.begin` is `DriverWorkcell`'s `on_item` hook: an item is journalled as the running task's before the
  PLC is told it was taken, so no item the conveyor handed over can go unreported (an entry a cancelled task left
  for the same item is taken over: one entry per item).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import anyio
import anyio.lowlevel
import structlog

from statecharts.workcell import (
    Eligibility,
    Interlocks,
    ItemArrival,
    Motion,
    MotionResult,
    PickOrder,
    PickPlan,
    StowOption,
    StowPlan,
    TaskReport,
    Verification,
    Workcell,
)

from .store import CellStore, OutboxEntry, OutboxFull, PickRequest

__all__ = ["FcOrders", "ReportingWorkcell", "StowJournal", "report_payload"]

log = structlog.get_logger("fc")
FULL_RETRY_S = 1.0  # a report refused by a full outbox is tried again this often (the cell waits, alarmed)


def report_payload(report: TaskReport) -> dict[str, Any]:
    """A task report as the outbox keeps it (and the FC reads it)."""
    return report.model_dump(mode="json")


class StowJournal:
    """Journals each item the conveyor hands over as the running task's, before the PLC hears it was taken.

    An entry of another task for the same item is taken over (dropped, then this task's begun): that task ended
    without the item (cancelled between the journal and the chart taking it: no grasp, no report), and the item,
    still at the pick-up point, is this task's now. Left, it would be reported as a handoff after a crash, beside
    this task's report."""

    def __init__(self, store: CellStore, current_task: Callable[[], str]) -> None:
        self.store, self.current_task = store, current_task

    async def begin(self, item: ItemArrival) -> None:
        task_id = self.current_task() or f"unassigned-{item.item_id}"

        def begin() -> None:
            for u in self.store.unfinished():
                if u.kind == "stow" and u.item_id == item.item_id and u.task_id != task_id:
                    self.store.drop_task(u.task_id)
                    log.info("journal entry taken over: its task ended before it took the item", task_id=u.task_id,
                             by=task_id, item_id=item.item_id)
            self.store.begin_task(task_id, "stow", item.item_id, "", {"item": item.model_dump(mode="json")})

        await anyio.to_thread.run_sync(begin)


class FcOrders:
    """The FC's pick requests (the store's queue), oldest first; `wake()` when one was added."""

    def __init__(self, store: CellStore) -> None:
        self.store = store
        self._added = anyio.Event()

    def wake(self) -> None:
        self._added.set()

    def wake_threadsafe(self) -> None:
        """`wake` from the FC server's worker thread (or the loop's own)."""
        try:
            anyio.from_thread.run_sync(self.wake)
        except RuntimeError:  # already on the loop's thread
            self.wake()

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        with anyio.move_on_after(timeout_s):
            while True:
                request = await self._take()
                if request is not None:
                    return PickOrder(order_id=request.task_id, item_id=request.item_id, bin_id=request.bin_id,
                                     product_id=request.product_id)
                self._added = anyio.Event()
                await self._added.wait()
        return None


    async def _take(self) -> PickRequest | None:
        # A cancellation while the worker thread takes the request would drop its result with the request marked
        # taken (stuck until a restart): take it shielded, and give it back if a cancellation came meanwhile.
        with anyio.CancelScope(shield=True):
            request = await anyio.to_thread.run_sync(self.store.take_request)
        if request is not None:
            await _give_back_if_cancelled(self.store, request.task_id)
        return request


async def _give_back_if_cancelled(store: CellStore, task_id: str) -> None:
    """A checkpoint; a pending cancellation first puts the pick request `task_id` back in the queue (in its old
    place, journal entry gone) and is then raised. Not an FC request (another order source): nothing to give."""
    try:
        await anyio.lowlevel.checkpoint()
    except anyio.get_cancelled_exc_class():
        with anyio.CancelScope(shield=True), suppress(ValueError):
            await anyio.to_thread.run_sync(lambda: store.release_request(task_id))
        log.info("pick request put back: its task was cancelled before it began", task_id=task_id)
        raise


class ReportingWorkcell:
    """A `Workcell` that puts every report through the outbox first (and journals primitives and orders)."""

    def __init__(self, inner: Workcell, store: CellStore, *, current_task: Callable[[], str],
                 on_committed: Callable[[OutboxEntry], None] | None = None,
                 on_full: Callable[[str], None] | None = None) -> None:
        self.inner, self.store, self.current_task = inner, store, current_task
        self.on_committed, self.on_full = on_committed, on_full
        self.committed = 0  # reports this process put in the outbox
        self._orders: dict[str, PickOrder] = {}  # the chart's pick task id -> the FC's order it runs

    async def _room(self) -> bool:
        """False (and the alarm raised) while the outbox is full: take no new work."""
        if not await anyio.to_thread.run_sync(lambda: self.store.full):
            return True
        n, age = self.store.pending_count(), self.store.oldest_pending_age_s() or 0.0
        text = (f"outbox full: {n} reports unacknowledged by the FC (oldest {age:.0f} s); "
                "no new task starts until the FC acknowledges")
        log.error("outbox full", pending=n, oldest_s=round(age, 1))
        if self.on_full is not None:
            self.on_full(text)
        return False

    async def next_item(self, timeout_s: float) -> ItemArrival | None:
        if not await self._room():
            await anyio.sleep(timeout_s)
            return None
        try:
            return await self.inner.next_item(timeout_s)
        except anyio.get_cancelled_exc_class():
            # The task ends without its item (a hold, a stop): an entry the journal hook made for it goes, so a
            # clean stop leaves nothing unfinished; the item, acknowledged and still at the pick-up point, is the
            # next call's (DriverWorkcell holds it back) or, after a restart, announced again.
            task_id = self.current_task()
            if task_id:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(lambda: self.store.drop_task(task_id))
            raise

    async def next_order(self, timeout_s: float) -> PickOrder | None:
        if not await self._room():
            await anyio.sleep(timeout_s)
            return None
        order = await self.inner.next_order(timeout_s)
        if order is not None:
            task_id = self.current_task()
            detail = {"chart_task_id": task_id}
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(
                    lambda: self.store.begin_task(order.order_id, "pick", order.item_id, order.bin_id, detail))
            await _give_back_if_cancelled(self.store, order.order_id)  # the task ends before it has the order
            self._orders[task_id] = order
        return order

    def _journal_id(self) -> str:
        task_id = self.current_task()
        order = self._orders.get(task_id)
        return order.order_id if order is not None else task_id

    async def move(self, motion: Motion) -> MotionResult:
        task_id = self._journal_id()
        if task_id:
            step = {"primitive": motion.primitive.value, "params": motion.params, "t_s": anyio.current_time()}
            await anyio.to_thread.run_sync(lambda: self._note(task_id, step))
        return await self.inner.move(motion)

    def _note(self, task_id: str, step: dict[str, Any]) -> None:
        with suppress(ValueError):  # not journalled (a stow task before its item came): nothing to locate yet
            self.store.note_step(task_id, step)

    async def report(self, report: TaskReport) -> None:
        order = self._orders.pop(report.task_id, None)
        task_id = order.order_id if order is not None else report.task_id
        payload = report_payload(report)
        if order is not None:
            payload["chart_task_id"] = report.task_id
            payload["task_id"] = task_id
        entry = await self._commit(task_id, payload)
        if entry is not None:  # durable now: the FC hears first (its latency), then the log
            self.committed += 1
            if self.on_committed is not None:
                self.on_committed(entry)
        await self.inner.report(report)

    async def _commit(self, task_id: str, payload: dict[str, Any]) -> OutboxEntry | None:  # type: ignore[return]
        kind = "handoff" if payload.get("outcome") == "handoff" else "report"
        with anyio.CancelScope(shield=True):  # a report begun is committed, whatever is cancelled around it
            while True:
                try:
                    return await anyio.to_thread.run_sync(lambda: self.store.commit_report(task_id, kind, payload))
                except OutboxFull as exc:
                    log.error("report waits for room in the outbox", task_id=task_id, error=str(exc))
                    if self.on_full is not None:
                        self.on_full(str(exc))
                    await anyio.sleep(FULL_RETRY_S)

    # -- the rest of the port, unchanged -------------------------------------------------------------------------

    async def set_hook(self, down: bool, timeout_s: float) -> MotionResult:
        return await self.inner.set_hook(down, timeout_s)

    async def plan_stow(self, item: ItemArrival, exclude_bins: tuple[str, ...] = ()) -> StowPlan:
        return await self.inner.plan_stow(item, exclude_bins)

    async def verify_stow(self, item: ItemArrival, option: StowOption) -> Verification:
        return await self.inner.verify_stow(item, option)

    async def check_pick(self, order: PickOrder) -> Eligibility:
        return await self.inner.check_pick(order)

    async def plan_pick(self, order: PickOrder) -> PickPlan:
        return await self.inner.plan_pick(order)

    async def halt(self) -> None:
        await self.inner.halt()

    def interlocks(self) -> AsyncIterator[Interlocks]:
        return self.inner.interlocks()
