"""DriverWorkcell.next_item over the real PLC driver and the simulated conveyor: only the arrival at the pick-up
point is taken (a restarted controller re-reads the whole ArrivalLog), and an item journalled and acknowledged by a
call that was then cancelled is the next call's, journalled again under its task (one journal entry per item)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from asyncua import Client
from driver_cells import WAIT_S, driver_cell

from cellctl.fc.recovery import AT_PICKUP, AT_PICKUP_NODE, Pickup
from cellctl.fc.reporting import StowJournal
from cellctl.fc.store import CellStore
from drivers.sim.plc import SimItem
from statecharts.workcell import ItemArrival

pytestmark = pytest.mark.anyio


class AtPickupReader:
    """`PlcClient.read` of AtPickup over an OPC UA session of its own (as `cellctl run` maps the node)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def read(self, name: str, *, timeout_s: float | None = None) -> Any:
        assert name == AT_PICKUP
        ns = await self.client.get_namespace_index(AT_PICKUP_NODE.split(";")[0].removeprefix("nsu="))
        return await self.client.get_node(f"ns={ns};{AT_PICKUP_NODE.split(';')[1]}").read_value()


async def test_only_the_arrival_at_the_pick_up_point_is_taken() -> None:
    async with driver_cell() as c, Client(c.devices.plc.url, timeout=WAIT_S) as client:
        c.port.present = Pickup(AtPickupReader(client)).present
        with anyio.fail_after(WAIT_S):
            first = await c.port.next_item(WAIT_S)  # the item the conveyor stopped at the pick-up point
        assert first is not None and first.item_id == str(c.devices.cell.arriving.item_id)  # type: ignore[union-attr]
        # A record whose item is not there (as the log's old records are to a restarted controller): skipped.
        await c.devices.plc.arrive(SimItem("ghost-1", 300.0, 200.0, 100.0, 1.0))
        with anyio.fail_after(WAIT_S):
            assert await c.port.next_item(1.0) is None
        assert "ghost-1" not in c.devices.plc.acknowledged and str(first.item_id) in c.devices.plc.acknowledged


async def test_an_item_taken_by_a_cancelled_call_is_the_next_calls(tmp_path: Path) -> None:
    task = ["r1-stow-000000"]
    journalled = anyio.Event()
    with CellStore.open(tmp_path / "fc.sqlite") as store:
        journal = StowJournal(store, lambda: task[0])

        async def on_item(item: ItemArrival) -> None:
            await journal.begin(item)
            journalled.set()

        async with driver_cell() as c:
            c.port.on_item = on_item
            with anyio.fail_after(WAIT_S):
                async with anyio.create_task_group() as tg:
                    async def first_call() -> None:
                        await c.port.next_item(WAIT_S)
                        pytest.fail("the cancelled call returned its item")

                    tg.start_soon(first_call)
                    await journalled.wait()  # inside the shield: the journal, then the acknowledgement
                    tg.cancel_scope.cancel()
                task[0] = "r1-stow-000001"  # the cell's next task
                again = await c.port.next_item(WAIT_S)
            assert again is not None and again.item_id == str(c.devices.cell.arriving.item_id)  # type: ignore[union-attr]
            assert again.item_id in c.devices.plc.acknowledged
        assert [(u.task_id, u.item_id) for u in store.unfinished()] == [("r1-stow-000001", again.item_id)]
