"""PLC driver against the simulated PLC, over real OPC UA on 127.0.0.1."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest
from anyio.abc import TaskGroup, TaskStatus
from asyncua import ua
from pydantic import ValidationError

from drivers.plc import BackoffConfig, PlcBadStatus, PlcClient, PlcConfig, PlcDisconnected, SecurityConfig
from drivers.plc_nodes import BinLayout, InterlockState, PlcNodeMap
from drivers.sim.plc import PlcSim, SimItem, SimPod

pytestmark = pytest.mark.anyio

WAIT_S = 10.0  # generous bound for anything that should take well under a second


def fast_config(url: str, **overrides: object) -> PlcConfig:
    """Quick loss detection and reconnect, so the restart test takes about a second."""
    settings: dict[str, object] = {
        "url": url,
        "watchdog_interval_s": 0.2,
        "request_timeout_s": 2.0,
        "connect_timeout_s": 3.0,
        "publishing_interval_ms": 20.0,
        "backoff": BackoffConfig(initial_s=0.05, max_s=0.4, jitter_s=0.02),
        **overrides,
    }
    return PlcConfig.model_validate(settings)


def item(item_id: str, length: float = 300.0, weight: float = 1.2) -> SimItem:
    return SimItem(item_id=item_id, length_mm=length, width_mm=200.0, height_mm=100.0, weight_kg=weight)


async def wait_until(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for a condition that a driver task makes true."""
    # Incidents are plain counters (no event to wait on), so poll them under a deadline.
    with anyio.fail_after(WAIT_S):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@dataclass
class SimRunner:
    """Runs `sim.serve()` in its own cancel scope so a test can stop and restart the server."""

    sim: PlcSim
    tg: TaskGroup
    _scope: anyio.CancelScope | None = None
    _stopped: anyio.Event | None = None

    async def start(self) -> int:
        self._scope, self._stopped = anyio.CancelScope(), anyio.Event()
        scope, stopped = self._scope, self._stopped

        async def serve(*, task_status: TaskStatus[int]) -> None:
            try:
                with scope:
                    await self.sim.serve(task_status=task_status)
            finally:
                stopped.set()

        port: int = await self.tg.start(serve)
        return port

    async def stop(self) -> None:
        assert self._scope is not None and self._stopped is not None
        self._scope.cancel()
        with anyio.fail_after(WAIT_S):
            await self._stopped.wait()


@asynccontextmanager
async def station(**overrides: object) -> AsyncIterator[tuple[SimRunner, PlcClient]]:
    async with anyio.create_task_group() as tg:
        runner = SimRunner(PlcSim(), tg)
        await runner.start()
        client = PlcClient(fast_config(runner.sim.url, **overrides))
        await tg.start(client.run)
        yield runner, client
        tg.cancel_scope.cancel()


async def test_subscriptions_deliver_arrivals_interlocks_and_pod() -> None:
    async with station() as (runner, client):
        sim = runner.sim
        status = client.status.subscribe()
        arrivals = client.arrivals.subscribe()
        interlocks = client.interlocks.subscribe()
        pods = client.pod.subscribe()
        with anyio.fail_after(WAIT_S):
            assert (await status.receive()).connected
            assert (await interlocks.receive()) == InterlockState(
                estop_active=False, light_curtain_broken=False, door_open=False
            )

            # back-to-back arrivals inside one publishing interval: none conflated, in order
            for n in range(1, 6):
                await sim.arrive(item(f"T{n}", length=100.0 + n))
            got = [await arrivals.receive() for _ in range(5)]
            assert [a.seq for a in got] == [1, 2, 3, 4, 5]
            assert [a.item_id for a in got] == ["T1", "T2", "T3", "T4", "T5"]
            assert got[2].length_mm == 103.0 and got[2].weight_kg == 1.2

            await sim.set_interlock("estop_active", True)
            state = await interlocks.receive()
            assert state.estop_active and not state.clear
            await sim.set_interlock("estop_active", False)
            await sim.set_interlock("light_curtain_broken", True)
            assert await interlocks.receive() == InterlockState(
                estop_active=False, light_curtain_broken=False, door_open=False
            )
            assert (await interlocks.receive()).light_curtain_broken

            layout = BinLayout.uniform(rows=3, columns=2, width_mm=250, height_mm=200, depth_mm=350)
            assert await sim.present_pod(SimPod("POD-7", "C", layout)) == 1
            pod = await pods.receive()
            assert (pod.seq, pod.pod_id, pod.face, pod.layout) == (1, "POD-7", "C", layout)
        assert arrivals.pending() == 0 and client.incidents.snapshot() == {}


async def test_server_restart_reconnects_resubscribes_and_rereads_missed_values() -> None:
    """Acceptance: the server stops and restarts on the same port; the same client recovers."""
    async with station() as (runner, client):
        sim = runner.sim
        status = client.status.subscribe()
        arrivals = client.arrivals.subscribe()
        interlocks = client.interlocks.subscribe()
        with anyio.fail_after(WAIT_S):
            assert (await status.receive()).connected
            assert (await interlocks.receive()).clear
            await sim.arrive(item("BEFORE"))
            assert (await arrivals.receive()).item_id == "BEFORE"
        port = sim.port

        await runner.stop()
        with anyio.fail_after(WAIT_S):
            down = await status.receive()
        assert down.state == "disconnected" and not client.connected

        # requests while disconnected fail clearly, within their timeout
        t0 = time.monotonic()
        with pytest.raises(PlcDisconnected, match="disconnected"):
            await client.read("conveyor.index_count", timeout_s=0.3)
        assert time.monotonic() - t0 < 1.5

        # the station moves on while the client cannot see it
        await sim.arrive(item("WHILE-DOWN-1"))
        await sim.arrive(item("WHILE-DOWN-2"))
        await sim.set_interlock("door_open", True)

        assert await runner.start() == port
        await sim.arrive(item("AFTER-RESTART"))  # possibly before the client is back
        with anyio.fail_after(WAIT_S):
            assert (await status.receive()).connected
            got = [await arrivals.receive() for _ in range(3)]
            assert [(a.seq, a.item_id) for a in got] == [(2, "WHILE-DOWN-1"), (3, "WHILE-DOWN-2"), (4, "AFTER-RESTART")]
            state = await interlocks.receive()
            assert state.door_open and not state.estop_active

            # the re-created subscriptions keep delivering
            await sim.arrive(item("LIVE"))
            assert (await arrivals.receive()).seq == 5
            await sim.set_interlock("door_open", False)
            assert (await interlocks.receive()).clear
            assert await client.read("conveyor.arrival_seq") == 5
        assert arrivals.pending() == 0  # nothing delivered twice
        assert client.incidents["connection_lost"] == 1
        assert client.incidents["arrival_gap"] == 0


async def test_methods_reads_and_writes() -> None:
    async with station() as (runner, client):
        sim = runner.sim
        arrivals = client.arrivals.subscribe()
        await client.wait_connected(WAIT_S)
        await sim.arrive(item("ACK-ME"))
        with anyio.fail_after(WAIT_S):
            await arrivals.receive()

        assert await client.call("acknowledge_item", "ACK-ME") is True
        assert await client.call("acknowledge_item", "ACK-ME") is False  # already acknowledged
        assert await client.call("acknowledge_item", "NO-SUCH-ITEM") is False
        assert list(sim.acknowledged) == ["ACK-ME"]

        assert await client.call("index_conveyor") is True
        assert await client.read("conveyor.index_count") == 1
        await sim.set_interlock("estop_active", True)
        assert await client.call("index_conveyor") is False  # the PLC refuses motion
        assert await client.read("interlocks.estop_active") is True

        await client.write("conveyor.speed_setpoint", 312.5)
        assert await sim.read("conveyor.speed_setpoint") == 312.5
        await client.write("conveyor.speed_setpoint", 400)  # int converted to the node's Double
        assert await client.read("conveyor.speed_setpoint") == 400.0

        with pytest.raises(PlcBadStatus, match="arrival_seq"):
            await client.write("conveyor.arrival_seq", 99)  # read-only in the PLC
        with pytest.raises(ValueError, match="non-finite"):
            await client.write("conveyor.speed_setpoint", math.nan)
        with pytest.raises(KeyError, match="unknown PLC variable"):
            await client.read("conveyor.nope")
        with pytest.raises(KeyError, match="unknown PLC method"):
            await client.call("self_destruct")


async def test_bad_values_are_counted_and_not_published() -> None:
    async with station() as (runner, client):
        sim = runner.sim
        arrivals = client.arrivals.subscribe()
        interlocks = client.interlocks.subscribe()
        pods = client.pod.subscribe()
        inc = client.incidents
        with anyio.fail_after(WAIT_S):
            assert (await interlocks.receive()).clear

        # Bad status: the interlock becomes unknown, so no snapshot goes out, even when another changes
        await sim.inject("interlocks.door_open", status=ua.StatusCodes.BadSensorFailure)
        await wait_until(lambda: inc["bad_status"] == 1)
        await sim.set_interlock("estop_active", True)
        await sim.set_interlock("door_open", False)  # good value again: one complete snapshot
        with anyio.fail_after(WAIT_S):
            assert await interlocks.receive() == InterlockState(
                estop_active=True, light_curtain_broken=False, door_open=False
            )

        # wrong variant type (Int32 where a Boolean belongs)
        await sim.inject("interlocks.light_curtain_broken", 7, vtype=ua.VariantType.Int32)
        await wait_until(lambda: inc["bad_type"] == 1)
        await sim.set_interlock("light_curtain_broken", True)
        with anyio.fail_after(WAIT_S):
            assert (await interlocks.receive()).light_curtain_broken
        assert interlocks.pending() == 0

        # malformed arrivals: negative dimension, NaN weight, not JSON at all
        await sim.arrive(item("NEG", length=-5.0))
        await sim.arrive(item("NAN", weight=math.nan))
        await sim.arrive_raw("}{ not json")
        await sim.arrive(item("GOOD"))
        with anyio.fail_after(WAIT_S):
            good = await arrivals.receive()
        assert (good.seq, good.item_id) == (3, "GOOD")
        assert inc["bad_arrival"] == 3

        # malformed pods: bad JSON layout, wrong grid, unknown face; then a good one.
        # (The pod is state, not an event log: back-to-back generations may conflate, so wait for each.)
        bad_pods = [
            SimPod("P1", "A", '{"rows": 2, "columns": '),
            SimPod("P2", "A", '{"rows": 2, "columns": 2, "bins": []}'),
            SimPod("P3", "Z", BinLayout.uniform(1, 1, 100, 100, 100)),
        ]
        for n, bad_pod in enumerate(bad_pods, start=1):
            await sim.present_pod(bad_pod)
            await wait_until(lambda n=n: inc["bad_pod"] == n)
        await sim.present_pod(SimPod("P4", "B", BinLayout.uniform(1, 2, 100, 100, 100)))
        with anyio.fail_after(WAIT_S):
            pod = await pods.receive()
        assert (pod.seq, pod.pod_id, pod.face) == (4, "P4", "B")

        # a Bad status on an explicit read is an error, and counted
        await sim.inject("conveyor.index_count", status=ua.StatusCodes.BadDeviceFailure)
        with pytest.raises(PlcBadStatus, match="BadDeviceFailure"):
            await client.read("conveyor.index_count")
        assert inc["bad_status"] == 2

        # nothing else leaked out, and the client stayed connected throughout
        assert arrivals.pending() == 0 and pods.pending() == 0 and interlocks.pending() == 0
        assert client.connected and inc["connection_lost"] == 0


async def test_a_malformed_record_with_a_wild_seq_holds_back_no_later_arrival() -> None:
    async with station() as (runner, client):
        sim = runner.sim
        arrivals = client.arrivals.subscribe()
        inc = client.incidents
        await client.wait_connected(WAIT_S)
        await sim.arrive(item("A1"))
        with anyio.fail_after(WAIT_S):
            assert (await arrivals.receive()).item_id == "A1"

        # garbage with a seq far ahead of the PLC's ArrivalSeq (1), then good arrivals after it
        await sim.arrive_raw('{"seq": 100000, "item_id": "junk"}')
        for n in range(2, 5):
            await sim.arrive(item(f"A{n}"))
            with anyio.fail_after(WAIT_S):
                got = await arrivals.receive()
            assert (got.seq, got.item_id) == (n, f"A{n}")
        # a malformed record in line (its seq is the PLC's next) is passed over, not reported as a gap
        await sim.arrive(item("NEG", length=-1.0))
        await sim.arrive(item("A6"))
        with anyio.fail_after(WAIT_S):
            got = await arrivals.receive()
        assert (got.seq, got.item_id) == (6, "A6")
        assert client.last_arrival_seq == 6

        # a client connecting now takes its baseline from the good seqs, not the garbage one
        late = PlcClient(fast_config(sim.url))
        late_arrivals = late.arrivals.subscribe()
        runner.tg.start_soon(late.run)
        await late.wait_connected(WAIT_S)
        assert late.last_arrival_seq == 6
        await sim.arrive(item("A7"))
        with anyio.fail_after(WAIT_S):
            assert (await arrivals.receive()).seq == 7
            assert (await late_arrivals.receive()).seq == 7

        # each malformed record counted once however often the log is re-read; nothing delivered twice
        assert arrivals.pending() == 0 and late_arrivals.pending() == 0
        assert inc["bad_arrival"] == 2
        assert inc["arrival_gap"] == 0 and inc["arrival_seq_reset"] == 0


async def test_an_estop_is_published_while_an_arrival_log_read_hangs() -> None:
    # The held read must outlast the checks below without the driver giving up on it (request
    # timeout) or its keepalive probe (queued behind it in the server) declaring the link dead.
    async with station(request_timeout_s=30.0, watchdog_interval_s=20.0) as (runner, client):
        sim = runner.sim
        arrivals = client.arrivals.subscribe()
        interlocks = client.interlocks.subscribe()
        with anyio.fail_after(WAIT_S):
            assert (await interlocks.receive()).clear
        hold = sim.hold_reads("conveyor.arrival_log")
        try:
            await sim.arrive(item("SLOW"))
            with anyio.fail_after(WAIT_S):
                await hold.wait_parked()  # the driver's ArrivalLog read now hangs in the PLC
            await sim.set_interlock("estop_active", True)
            with anyio.fail_after(5.0):  # far below the request timeout: the read is still hanging
                assert (await interlocks.receive()).estop_active
            assert hold.parked == 1 and not hold.released and arrivals.pending() == 0
        finally:
            hold.release()
        with anyio.fail_after(WAIT_S):
            got = await arrivals.receive()
            assert (got.seq, got.item_id) == (1, "SLOW")
            await sim.set_interlock("estop_active", False)
            assert (await interlocks.receive()).clear
            await sim.arrive(item("NEXT"))
            assert (await arrivals.receive()).seq == 2
        assert arrivals.pending() == 0 and interlocks.pending() == 0
        assert client.connected and client.incidents.snapshot() == {}


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_requests_fail_clearly_while_the_plc_is_unreachable() -> None:
    client = PlcClient(fast_config(f"opc.tcp://127.0.0.1:{_unused_port()}/cellctl/plc"))
    async with anyio.create_task_group() as tg:
        await tg.start(client.run)
        for request in (
            client.read("interlocks.estop_active", timeout_s=0.3),
            client.write("conveyor.speed_setpoint", 1.0, timeout_s=0.3),
            client.call("index_conveyor", timeout_s=0.3),
        ):
            t0 = time.monotonic()
            with pytest.raises(PlcDisconnected, match=r"disconnected .*gave up after 0.3 s"):
                await request
            assert time.monotonic() - t0 < 1.5
        await wait_until(lambda: client.incidents["connect_failed"] >= 2)  # retrying with backoff
        assert not client.connected and "connect failed" in client.last_error
        tg.cancel_scope.cancel()


async def test_node_map_from_config() -> None:
    # an `ns=` NodeId and a renamed variable work like the defaults
    nodes = PlcNodeMap(extra={"belt_speed": "ns=2;s=StowStation.Conveyor.SpeedSetpoint"})
    async with station(nodes=nodes) as (_runner, client):
        await client.write("belt_speed", 123.0)
        assert await client.read("conveyor.speed_setpoint") == 123.0

    # a namespace the server does not have: connecting fails (counted, retried), never crashes
    bad = PlcNodeMap(interlocks={"door_open": "nsu=urn:other:plc;s=Door"})
    async with station(nodes=bad) as (_runner, client):
        await wait_until(lambda: client.incidents["connect_failed"] >= 1)
        assert not client.connected and "urn:other:plc" in client.last_error

    with pytest.raises(ValidationError, match="NodeId"):
        PlcNodeMap(extra={"x": "not a node id"})
    with pytest.raises(ValidationError, match="shadow"):
        PlcNodeMap(extra={"pod.face": "ns=2;i=5"})
    with pytest.raises(ValidationError, match="certificate"):
        SecurityConfig(policy="Basic256Sha256")
    with pytest.raises(ValidationError, match=r"opc\.tcp"):
        PlcConfig(url="http://plc")
