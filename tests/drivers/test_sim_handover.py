"""The simulated PLC's transfer record: AtPickup names the arrival at the pick-up point before the ArrivalLog has
it; HandedOver (bounded) and HandedOverCount record each item the cell took off the conveyor; all read-only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from asyncua import Client, ua

from drivers.plc_nodes import SIM_NAMESPACE
from drivers.sim.plc import PlcSim, SimItem

pytestmark = pytest.mark.anyio

WAIT_S = 10.0


def item(item_id: str) -> SimItem:
    return SimItem(item_id=item_id, length_mm=300.0, width_mm=200.0, height_mm=100.0, weight_kg=1.2)


@asynccontextmanager
async def served(**kwargs: int) -> AsyncIterator[tuple[PlcSim, Client, int]]:
    async with anyio.create_task_group() as tg:
        sim = PlcSim(**kwargs)
        await tg.start(sim.serve)
        async with Client(sim.url, timeout=WAIT_S) as client:
            yield sim, client, await client.get_namespace_index(SIM_NAMESPACE)
        tg.cancel_scope.cancel()


async def test_the_pick_up_point_and_the_hand_overs_as_a_client_reads_them() -> None:
    with anyio.fail_after(30):
        async with served(history=3) as (sim, client, ns):
            node = lambda path: client.get_node(f"ns={ns};s=StowStation.Conveyor.{path}")  # noqa: E731
            at, log, count = node("AtPickup"), node("HandedOver"), node("HandedOverCount")
            assert await at.read_value() == "" and await log.read_value() == [] and await count.read_value() == 0

            seq = await sim.arrive(item("A1"), at_pickup=True)
            assert json.loads(await at.read_value()) == {"seq": seq, **json.loads(sim.at_pickup)}
            again = await sim.arrive(item("A1"), at_pickup=True)  # a grasp failed: announced again
            assert json.loads(await at.read_value())["seq"] == again
            assert await sim.hand_over(again) == 1
            assert await at.read_value() == ""  # taken: nothing at the pick-up point
            assert [json.loads(r) for r in await log.read_value()] == [{"n": 1, "seq": again, "item_id": "A1"}]
            assert await count.read_value() == 1

            for i in range(4):  # the log keeps the latest `history`; the count goes on
                await sim.hand_over(await sim.arrive(item(f"B{i}"), at_pickup=True))
            assert [json.loads(r)["n"] for r in await log.read_value()] == [3, 4, 5]
            assert await count.read_value() == 5
            with pytest.raises(ValueError, match="no arrival with seq 999"):
                await sim.hand_over(999)


async def test_the_transfer_record_is_read_only() -> None:
    with anyio.fail_after(30):
        async with served() as (_sim, client, ns):
            for path, value in (("AtPickup", ua.Variant("forged", ua.VariantType.String)),
                                ("HandedOver", ua.Variant(["{}"], ua.VariantType.String)),
                                ("HandedOverCount", ua.Variant(7, ua.VariantType.UInt32))):
                node = client.get_node(f"ns={ns};s=StowStation.Conveyor.{path}")
                with pytest.raises(ua.UaStatusCodeError) as refused:
                    await node.write_value(value)
                assert refused.value.code in (ua.StatusCodes.BadUserAccessDenied, ua.StatusCodes.BadNotWritable)
