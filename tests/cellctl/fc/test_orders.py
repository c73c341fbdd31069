"""cellctl.fc.reporting's pick orders: a pick request a cancelled task took goes back to the queue, in its place,
whether the cancellation came while the store took it or while the journal recorded it."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from cellctl.fc.reporting import FcOrders, ReportingWorkcell
from cellctl.fc.store import CellStore, PickRequest
from statecharts.workcell import PickOrder

pytestmark = pytest.mark.anyio


class HeldTake:
    """The store, with `take_request` held in its worker thread until the test lets it go."""

    def __init__(self, store: CellStore) -> None:
        self.store = store
        self.entered, self.go = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def take_request(self) -> PickRequest | None:
        self.entered.set()
        self.go.wait(10)
        return self.store.take_request()


async def test_a_request_taken_while_its_task_is_cancelled_goes_back_in_its_place(tmp_path: Path) -> None:
    store = CellStore.open(tmp_path / "fc.sqlite")
    try:
        first = store.add_request("item-1", "", "P1", "P1-1A")
        store.add_request("item-2", "", "P1", "P1-1B")
        held = HeldTake(store)
        orders = FcOrders(held)  # type: ignore[arg-type]
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(orders.next_order, 5.0)
                await anyio.to_thread.run_sync(held.entered.wait)
                tg.cancel_scope.cancel()  # a hold, a stop: while the thread takes the request
                held.go.set()
        assert store.taken_requests() == []
        again = await FcOrders(store).next_order(1.0)
        assert again is not None and again.order_id == first  # its old place: first in the queue
    finally:
        store.close()


async def test_an_order_whose_journal_entry_is_written_as_its_task_is_cancelled_goes_back(tmp_path: Path) -> None:
    store = CellStore.open(tmp_path / "fc.sqlite")
    try:
        task_id = store.add_request("item-1", "", "P1", "P1-1A")
        cancel = anyio.Event()

        class Inner:
            async def next_order(self, timeout_s: float) -> PickOrder | None:
                order = await FcOrders(store).next_order(timeout_s)
                cancel.set()  # the cancellation lands while ReportingWorkcell journals the order
                return order

        port = ReportingWorkcell(Inner(), store, current_task=lambda: "r1-pick-000000")  # type: ignore[arg-type]
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(port.next_order, 5.0)
                await cancel.wait()
                tg.cancel_scope.cancel()
        assert store.taken_requests() == [] and store.requests_queued() == 1
        assert store.unfinished() == []  # no journal entry left for a restart to call interrupted
        order = await port.next_order(1.0)
        assert order is not None and order.order_id == task_id
        assert [u.task_id for u in store.unfinished()] == [task_id]
    finally:
        store.close()
