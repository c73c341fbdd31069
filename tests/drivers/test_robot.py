"""Robot driver against the simulated robot over real Modbus TCP on loopback (ephemeral ports)."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus
from pymodbus.client import AsyncModbusTcpClient

from drivers import robot_map as rm
from drivers.robot import EventKind, Outcome, RobotCommError, RobotConfig, RobotDriver, RobotEvent
from drivers.robot_map import FaultCode, Primitive, Status
from drivers.sim.robot import STOW_CYCLE, SimRobot, SimRobotConfig
from drivers.streams import Subscription

pytestmark = pytest.mark.anyio

FAST = 0.02  # sim time scale: a 2.5 s approach takes 50 ms
DRIVER_DEFAULTS: dict[str, Any] = {"reconnect_initial_s": 0.02, "reconnect_max_s": 0.2}


@asynccontextmanager
async def cell(
    sim_config: SimRobotConfig | None = None, **driver_kw: Any
) -> AsyncIterator[tuple[SimRobot, RobotDriver]]:
    sim = SimRobot(sim_config or SimRobotConfig(port=0, time_scale=FAST))
    async with anyio.create_task_group() as tg:
        port = await tg.start(sim.serve)
        driver = RobotDriver(RobotConfig(port=port, **{**DRIVER_DEFAULTS, **driver_kw}))
        await tg.start(driver.run)
        with anyio.fail_after(5):
            await driver.wait_ready()
        yield sim, driver
        tg.cancel_scope.cancel()


async def until(predicate: Callable[[], bool], within: float = 3.0) -> None:
    """Wait for a condition on in-process sim/driver state that has no event of its own, bounded."""
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 -- a 5 ms poll of plain attributes
            await anyio.sleep(0.005)


async def next_event(sub: Subscription[RobotEvent], kind: EventKind, within: float = 3.0) -> RobotEvent:
    with anyio.fail_after(within):
        while True:
            event = await sub.receive()
            if event.kind is kind:
                return event


# --- register map -----------------------------------------------------------------------------------------------


def test_register_map_doc_matches_code() -> None:
    text = (Path(__file__).parents[2] / "docs" / "register-map.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)

    def rows(title: str) -> dict[str, list[str]]:
        (body,) = [s for s in sections if s.startswith(title)]
        cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in body.splitlines()]
        return {c[1]: c for c in cells if len(c) > 2 and re.fullmatch(r"\d+|0x[0-9a-f]+", c[0])}

    hr, ir = rows("Holding registers"), rows("Input registers")
    for table, fields in ((hr, rm.HR_FIELDS), (ir, rm.IR_FIELDS)):
        assert set(table) == {f.name for f in fields}
        for f in fields:
            assert int(table[f.name][0]) == f.address and table[f.name][2] == f.kind, f.name
            assert table[f.name][4] == f.access
    assert {name: int(c[0], 0) for name, c in rows("Fault codes").items()} == {c.name: c.value for c in FaultCode}
    assert {name: int(c[0]) for name, c in rows("Status").items()} == {s.name: s.value for s in Status}
    assert {name: int(c[0]) for name, c in rows("Primitives").items()} == {p.name.lower(): p.value for p in Primitive}
    # the map is self-consistent: no overlaps, every register of the blocks accounted for
    for fields, count in ((rm.HR_FIELDS, rm.HR_COUNT), (rm.IR_FIELDS, rm.IR_COUNT)):
        used = [a for f in fields for a in range(f.address, f.address + f.size)]
        assert sorted(used) == list(range(count))


def test_encoding_helpers_round_trip() -> None:
    assert rm.decode_f32(*rm.encode_f32(123.5)) == 123.5
    assert math.isnan(rm.decode_f32(*rm.encode_f32(math.nan)))
    assert rm.SUCTION_KPA.encode(-80.0) == [(-800) & 0xFFFF] and rm.SUCTION_KPA.decode([(-800) & 0xFFFF]) == -80.0
    assert rm.BLADE_EXT.decode(rm.BLADE_EXT.encode(250.0)) == pytest.approx(250.0)
    assert rm.next_seq(1) == 2 and rm.next_seq(0xFFFF) == 1 and rm.next_seq(0) == 1
    img = rm.InputImage(status=Status.BUSY, ack=7, suction_kpa=-42.3, gripper_width_mm=55.5, belt_speed_mm_s=-120)
    back = rm.InputImage.decode(img.encode())
    assert (back.status, back.ack, back.suction_kpa, back.gripper_width_mm, back.belt_speed_mm_s) == (
        1, 7, pytest.approx(-42.3), 55.5, -120,
    )  # fmt: skip
    assert rm.resolve_params(Primitive.GRASP, {"force": 50}) == [40.0, 50.0]
    assert rm.resolve_params(Primitive.SWEEP, [100]) == [100.0, 200.0, 0.0, 0.0, 0.0, 1.0]


async def test_bad_arguments_are_rejected_before_anything_is_sent() -> None:
    driver = RobotDriver(RobotConfig(port=1))  # never started: nothing may reach a robot
    for primitive, params in (
        ("teleport", ()),
        ("grasp", [math.nan]),
        ("grasp", {"width": 500.0}),
        ("grasp", {"colour": 1.0}),
        ("open_band", [1.0]),
    ):
        with pytest.raises(ValueError):
            await driver.execute(primitive, params)
    with pytest.raises(ValueError):
        await driver.set_gripper_width(math.inf)
    with pytest.raises(ValueError):
        await driver.set_belt_speed(900)
    result = await driver.execute("grasp")
    assert result.outcome is Outcome.FAULT and result.fault_code == FaultCode.NOT_CONNECTED and result.seq == 0
    with pytest.raises(ValueError):
        RobotConfig(heartbeat_period_s=1.0, peer_heartbeat_timeout_s=0.5)
    with pytest.raises(ValueError):
        RobotConfig(poll_hz=50)


# --- primitives ------------------------------------------------------------------------------------------------------


async def test_primitives_complete_a_whole_stow_cycle() -> None:
    async with cell() as (sim, driver):
        result = await driver.execute("approach", {"x": 100.0, "z": 800.0}, timeout=2)
        assert result.ok and result.outcome is Outcome.DONE and result.fault_code == 0
        assert 2.5 * FAST * 0.9 <= result.duration_s < 1.5
        seq, prim, params = sim.commands[-1]
        assert (seq, prim) == (result.seq, Primitive.APPROACH) and params[:3] == [100.0, 0.0, 800.0]
        for primitive in STOW_CYCLE:
            result = await driver.execute(primitive, timeout=2)
            assert result.ok, result
            if primitive is Primitive.EXTEND_BLADE:
                tool = await driver.read_tool()
                assert tool.blade_extension_mm == pytest.approx(250.0, abs=0.5)
        tool = await driver.read_tool()
        assert tool.blade_extension_mm == pytest.approx(0.0, abs=0.5) and tool.hook_closed is True
        assert tool.belt_speed_mm_s == 0
        assert [c[0] for c in sim.commands] == list(range(1, len(STOW_CYCLE) + 2))  # one trigger per execute
        assert driver.incidents.snapshot() == {}


async def test_fault_is_reported_with_code_and_text() -> None:
    async with cell() as (sim, driver):
        events = driver.events.subscribe()
        sim.fail_next(FaultCode.BLADE_JAM)
        result = await driver.execute("extend_blade", {"extension": 200.0}, timeout=2)
        assert result.outcome is Outcome.FAULT
        assert result.fault_code == FaultCode.BLADE_JAM and result.fault_text == "blade jam"
        event = await next_event(events, EventKind.STATUS)
        while event.status is not Status.FAULT:
            event = await next_event(events, EventKind.STATUS)
        assert event.fault_code == FaultCode.BLADE_JAM and "blade jam" in event.message
        assert (await driver.execute("retract", timeout=2)).ok  # the fault was per command


async def test_timeout_halts_the_robot_and_reports_it() -> None:
    async with cell() as (sim, driver):
        sim.stall_next()
        result = await driver.execute("sweep", timeout=0.3)
        assert result.outcome is Outcome.TIMEOUT and "no completion within 0.3 s" in result.fault_text
        assert "robot halted" in result.fault_text and sim.halted and len(sim.halt_times) == 1
        assert 0.3 <= result.duration_s < 1.5
        refused = await driver.execute("sweep", timeout=2)
        assert refused.outcome is Outcome.FAULT and refused.fault_code == FaultCode.HALTED
        assert await driver.clear_halt()
        assert (await driver.execute("sweep", timeout=2)).ok


async def test_concurrent_execute_is_refused() -> None:
    async with cell() as (sim, driver), anyio.create_task_group() as tg:
        sim.stall_next()
        tg.start_soon(driver.execute, "extract", (), 1.0)
        await until(lambda: sim.status is Status.BUSY)
        second = await driver.execute("place")
        assert second.outcome is Outcome.FAULT and second.fault_code == FaultCode.DRIVER_BUSY
        await driver.halt()


# --- heartbeats -------------------------------------------------------------------------------------------------------


async def test_peer_heartbeat_loss_is_reported_and_fails_execute_fast() -> None:
    sim_config = SimRobotConfig(port=0, time_scale=FAST, durations_s={"extract": 100.0})  # 2 s
    async with cell(sim_config) as (sim, driver), anyio.create_task_group() as tg:
        events = driver.events.subscribe()
        results = []

        async def run_extract() -> None:
            results.append(await driver.execute("extract", timeout=10))

        tg.start_soon(run_extract)
        await until(lambda: sim.status is Status.BUSY)
        t0 = time.monotonic()
        sim.stop_heartbeat()
        lost = await next_event(events, EventKind.HEARTBEAT_LOST, within=2)
        assert "heartbeat lost" in lost.message and driver.incidents["peer_heartbeat_lost"] == 1
        await until(lambda: bool(results))
        (running,) = results
        assert running.outcome is Outcome.FAULT and running.fault_code == FaultCode.PEER_HEARTBEAT_LOST
        assert time.monotonic() - t0 < 1.5  # well before the 2 s primitive or the 10 s timeout
        assert "robot halted" in running.fault_text and sim.halted
        # while lost: fail fast, nothing sent
        sent = len(sim.commands)
        refused = await driver.execute("grasp")
        assert refused.outcome is Outcome.FAULT and refused.fault_code == FaultCode.PEER_HEARTBEAT_LOST
        assert refused.duration_s < 0.05 and "heartbeat lost" in refused.fault_text and len(sim.commands) == sent
        sim.resume_heartbeat()
        await next_event(events, EventKind.HEARTBEAT_OK)
        assert await driver.clear_halt()
        assert (await driver.execute("grasp", timeout=2)).ok


async def test_robot_halts_when_controller_heartbeat_stops() -> None:
    sim = SimRobot(SimRobotConfig(port=0, time_scale=FAST, controller_heartbeat_timeout_s=0.2))
    async with anyio.create_task_group() as tg:
        port = await tg.start(sim.serve)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, reconnect_delay=0, retries=0)
        assert await client.connect()
        try:
            await client.write_register(rm.HEARTBEAT_CTRL.address, 1)  # arm the watchdog, then go silent
            await until(lambda: sim.controller_heartbeat_lost)
            rsp = await client.read_input_registers(0, count=rm.IR_COUNT)
            img = rm.InputImage.decode(rsp.registers)
            assert (img.status, img.fault_code) == (Status.FAULT, FaultCode.CONTROLLER_HEARTBEAT_LOST)
            # a command is refused with the same code while the heartbeat is stale
            await client.write_registers(0, rm.encode_command(Primitive.GRASP, [40.0, 30.0]))
            await client.write_register(rm.CMD_SEQ.address, 1)
            img = rm.InputImage.decode((await client.read_input_registers(0, count=rm.IR_COUNT)).registers)
            assert (img.ack, img.status, img.fault_code) == (1, Status.FAULT, FaultCode.CONTROLLER_HEARTBEAT_LOST)
        finally:
            client.close()
        tg.cancel_scope.cancel()


# --- stop path ------------------------------------------------------------------------------------------------------


async def test_halt_arrives_promptly_while_main_connection_is_stalled() -> None:
    async with cell() as (sim, driver):
        sim.set_response_delay(2.0)  # every main-link response now hangs for 2 s
        await until(lambda: sim.stalled_requests >= 1)  # the poll is stuck mid-transaction
        t0 = time.perf_counter()
        assert await driver.halt()
        t1 = time.perf_counter()
        assert sim.halt_times and sim.halt_times[-1] - t0 < 0.1, "halt queued behind the stalled read"
        assert t1 - t0 < 0.2 and sim.stalled_requests >= 1  # it did not wait for the stalled response
        assert sim.halted and sim.status is Status.HALTED
        # the stalled transaction is counted, not fatal
        await until(lambda: driver.incidents["request_timeout"] >= 1)
        sim.set_response_delay(0.0)
        with anyio.fail_after(5):
            await driver.wait_ready()
        assert await driver.clear_halt()
        assert (await driver.execute("retract", timeout=2)).ok


# --- suction ------------------------------------------------------------------------------------------------------


async def test_suction_pressure_streams_at_100hz_and_follows_the_valve() -> None:
    async with cell() as (sim, driver):
        sub = driver.suction.subscribe(maxlen=10_000)
        with anyio.fail_after(3):
            first = await sub.receive()
            n = 1
            while (last := await sub.receive()).t - first.t < 0.5:
                n += 1
        rate = n / (last.t - first.t)
        assert rate >= 100, f"suction stream at {rate:.0f} Hz"
        assert abs(last.kpa) < 1 and not last.valve_open

        t_open = time.monotonic()
        await driver.set_suction(True)
        falling = []
        with anyio.fail_after(2):
            while (sample := await sub.receive()).kpa > -70:
                if sample.valve_open:
                    falling.append(sample.kpa)
        fall_s = sample.t - t_open
        assert 0.02 < fall_s < 0.5, fall_s  # ~100 ms to vacuum
        assert len(falling) >= 3 and falling == sorted(falling, reverse=True)  # sampled on the way down
        await driver.set_suction(False)
        with anyio.fail_after(2):
            while (await sub.receive()).kpa < -5:
                pass

        sim.set_suction_leak(True)
        result = await driver.execute("attach", timeout=2)
        assert result.outcome is Outcome.FAULT and result.fault_code == FaultCode.SUCTION_NOT_REACHED
        tool = await driver.read_tool()
        assert tool.suction_valve is True and tool.suction_kpa is not None and -20 < tool.suction_kpa < -5
        sim.set_suction_leak(False)
        assert (await driver.execute("attach", timeout=2)).ok
        assert (await driver.read_tool()).suction_kpa < -50


# --- tool I/O -------------------------------------------------------------------------------------------------------


async def test_tool_io_setpoints_and_actuals() -> None:
    async with cell() as (_sim, driver):
        await driver.set_gripper_width(50.0)
        await driver.set_blade_extension(120.5)
        await driver.set_belt_speed(-200)
        await driver.set_hook(True)
        setpoints = await driver.read_setpoints()
        assert setpoints["GRIPPER_WIDTH_SP"] == 50.0 and setpoints["BLADE_EXT_SP"] == pytest.approx(120.5)
        assert setpoints["BELT_SPEED_SP"] == -200 and setpoints["HOOK_SP"] == 1 and setpoints["HALT"] == 0

        async def settled() -> bool:
            tool = await driver.read_tool()
            return tool.gripper_width_mm == pytest.approx(50.0) and tool.blade_extension_mm == pytest.approx(120.5)

        with anyio.fail_after(3):
            while not await settled():
                pass
        tool = await driver.read_tool()
        assert tool.belt_speed_mm_s == -200 and tool.hook_closed is True


# --- bad input from the peer ---------------------------------------------------------------------------------------


async def test_modbus_exception_responses_are_counted_not_fatal() -> None:
    async with cell() as (sim, driver):
        sim.inject_exceptions(25)
        await until(lambda: sim.exceptions_sent == 25 and driver.incidents["modbus_exception"] >= 25)
        assert driver.connected
        with anyio.fail_after(3):
            await driver.wait_ready()
        assert (await driver.execute("grasp", timeout=2)).ok
        # an exception on the command write itself comes back as a COMM_ERROR fault, not an exception
        sim.inject_exceptions(10_000)
        result = await driver.execute("grasp", timeout=2)
        assert result.outcome is Outcome.FAULT and result.fault_code == FaultCode.COMM_ERROR and result.seq == 0
        with pytest.raises(RobotCommError):
            await driver.set_hook(True)
        sim.inject_exceptions(0)
        assert (await driver.execute("grasp", timeout=2)).ok


async def test_out_of_range_and_nan_values_are_counted_not_fatal() -> None:
    async with cell() as (sim, driver):
        sim.force_input("GRIPPER_WIDTH", rm.encode_f32(math.nan))
        sim.force_input("SUCTION_KPA", [rm.encode_i16(-2000)])  # -200 kPa: impossible
        sim.force_input("STATUS", [99])
        sub = driver.suction.subscribe()
        await until(lambda: driver.incidents["bad_value"] >= 10 and driver.incidents["unknown_status"] >= 5)
        state = driver.state
        assert state is not None and state.status is None
        assert state.tool.gripper_width_mm is None and state.tool.suction_kpa is None
        assert sub.drain() == []  # invalid pressure is never published
        for name in ("GRIPPER_WIDTH", "SUCTION_KPA", "STATUS"):
            sim.force_input(name, None)
        with anyio.fail_after(2):
            await sub.receive()
        assert driver.connected and (await driver.execute("release", timeout=2)).ok


# --- reconnect ------------------------------------------------------------------------------------------------------


async def test_driver_reconnects_after_the_robot_restarts() -> None:
    sim1 = SimRobot(SimRobotConfig(port=0, time_scale=FAST))
    async with anyio.create_task_group() as tg:
        async with anyio.create_task_group() as sim_tg:
            port = await sim_tg.start(sim1.serve)
            driver = RobotDriver(RobotConfig(port=port, **DRIVER_DEFAULTS))
            events = driver.events.subscribe()
            await tg.start(driver.run)
            with anyio.fail_after(5):
                await driver.wait_ready()
            assert (await driver.execute("approach", timeout=2)).ok
            sim_tg.cancel_scope.cancel()  # robot controller goes away

        await next_event(events, EventKind.DISCONNECTED)
        down = await driver.execute("approach", timeout=2)
        assert down.outcome is Outcome.FAULT and down.fault_code == FaultCode.NOT_CONNECTED and down.duration_s < 0.05
        assert not await driver.halt()  # nowhere to deliver it: reported, not raised
        assert driver.incidents["connection_lost"] >= 1

        sim2 = SimRobot(SimRobotConfig(port=port, time_scale=FAST))
        async with anyio.create_task_group() as sim_tg:
            await sim_tg.start(sim2.serve)
            await next_event(events, EventKind.CONNECTED, within=5)
            with anyio.fail_after(5):
                await driver.wait_ready()
            result = await driver.execute("approach", timeout=2)
            assert result.ok and result.seq == 1  # fresh robot: sequence follows its ACK
            await until(lambda: driver._halt_client is not None and driver._halt_client.connected)
            assert await driver.halt() and len(sim2.halt_times) == 1
            sim_tg.cancel_scope.cancel()
        tg.cancel_scope.cancel()


# --- abandoned primitives and a silently dead halt link -----------------------------------------------------------


async def test_cancelled_execute_halts_the_running_primitive() -> None:
    async with cell() as (sim, driver):
        sim.stall_next()
        finished = []

        async def run_sweep() -> None:
            finished.append(await driver.execute("sweep", timeout=10))

        async with anyio.create_task_group() as tg:  # e.g. the caller's task group, cancelled on an interlock
            tg.start_soon(run_sweep)
            await until(lambda: sim.status is Status.BUSY)
            tg.cancel_scope.cancel()
        # execute() re-raised the cancellation, but only once the halt had reached the robot
        assert finished == [] and sim.halted and len(sim.halt_times) == 1
        assert sim.status is Status.HALTED
        assert await driver.clear_halt()
        assert (await driver.execute("grasp", timeout=2)).ok


class BlackHoleProxy:
    """Loopback TCP proxy in front of the sim robot. `black_hole(client_port)` silently drops everything on that
    connection, both ways, and keeps it open: a half-open link that still looks connected to the driver.

    asyncio streams, not an anyio listener: cancelling a pending accept that races a new connection trips a
    CPython InvalidStateError at teardown (the tests run on asyncio only).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.dead: set[int] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    def black_hole(self, client_port: int) -> None:
        self.dead.add(client_port)

    async def serve(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        try:
            task_status.started(server.sockets[0].getsockname()[1])
            await anyio.sleep_forever()
        finally:
            server.close()
            for task in self._handlers:
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        client_port = writer.get_extra_info("peername")[1]
        up_writer: asyncio.StreamWriter | None = None
        pumps: list[asyncio.Task[None]] = []

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(4096):
                if client_port not in self.dead:
                    dst.write(data)

        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            pumps = [asyncio.create_task(pump(reader, up_writer)), asyncio.create_task(pump(up_reader, writer))]
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)  # one side closed: close both
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (writer, up_writer):
                if w is not None:
                    w.close()
            self._handlers.discard(task)


@asynccontextmanager
async def proxied_cell(**driver_kw: Any) -> AsyncIterator[tuple[SimRobot, BlackHoleProxy, RobotDriver]]:
    sim = SimRobot(SimRobotConfig(port=0, time_scale=FAST))
    async with anyio.create_task_group() as tg:
        proxy = BlackHoleProxy(await tg.start(sim.serve))
        port = await tg.start(proxy.serve)
        driver = RobotDriver(RobotConfig(port=port, **{**DRIVER_DEFAULTS, **driver_kw}))
        await tg.start(driver.run)
        with anyio.fail_after(5):
            await driver.wait_ready()
        yield sim, proxy, driver
        tg.cancel_scope.cancel()


async def black_hole_the_halt_link(proxy: BlackHoleProxy, driver: RobotDriver) -> AsyncModbusTcpClient:
    await until(lambda: driver._halt_client is not None and driver._halt_client.connected)
    client = driver._halt_client
    assert client is not None and client.ctx.transport is not None
    proxy.black_hole(client.ctx.transport.get_extra_info("sockname")[1])
    return client


async def test_halt_does_not_wait_out_a_silently_dead_halt_link() -> None:
    async with proxied_cell(halt_timeout_s=1.0) as (sim, proxy, driver):
        await black_hole_the_halt_link(proxy, driver)
        t0 = time.perf_counter()
        assert await driver.halt()  # at once, before the probe can have noticed the dead link
        assert sim.halt_times and sim.halt_times[-1] - t0 < 0.5, "halt waited out the dead halt link"
        assert time.perf_counter() - t0 < 0.5 and sim.halted and driver.connected


async def test_silently_dead_halt_link_is_probed_and_rebuilt() -> None:
    async with proxied_cell() as (sim, proxy, driver):
        dead = await black_hole_the_halt_link(proxy, driver)
        # the halt link carries no traffic of its own: only the probe can notice, and it rebuilds the link
        await until(lambda: (c := driver._halt_client) is not None and c is not dead and c.connected)
        assert driver.incidents["halt_link_probe_failed"] >= 1 and driver.connected
        t0 = time.perf_counter()
        assert await driver.halt()
        assert sim.halt_times and sim.halt_times[-1] - t0 < 0.05, "halt went out on the dead link"
