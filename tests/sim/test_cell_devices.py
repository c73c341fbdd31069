"""The simulated cell behind real protocols: robot (Modbus TCP), F/T (UDP) and PLC (OPC UA) on one world.

Everything runs on 127.0.0.1 with ephemeral ports, through the real drivers; the world (`devices.cell`) is
the ground truth the assertions read.
"""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError
from pymodbus.client import AsyncModbusTcpClient

from drivers import robot_map as rm
from drivers.ft import FTConfig, FTSensor, Wrench
from drivers.plc import BackoffConfig, PlcClient, PlcConfig
from drivers.robot import Outcome, PrimitiveResult, RobotConfig, RobotDriver
from drivers.robot_map import FaultCode, Primitive, Status
from drivers.sim.cell import SimCell
from drivers.sim.cell_devices import CellRobotModel, DeviceStartError, Endpoints, SimCellConfig, SimCellDevices
from drivers.sim.faults import profile
from drivers.sim.ft_sensor import SimFTSensor
from drivers.sim.robot import PrimitivePlan, SimRobot, SimRobotConfig
from drivers.sim.world import EPS, Item, PlacedItem
from drivers.streams import Subscription

pytestmark = pytest.mark.anyio

LOCAL = "127.0.0.1"
FAST = 0.05  # cell time scale: a 3.5 s approach takes 175 ms
WAIT_S = 5.0  # bound for anything that should take well under a second
START_S = 60.0  # bound for starting the servers: asyncua builds its standard address space (seconds when loaded)
OFF_POD = {"x": -100.0, "y": -100.0}  # a pod-frame point on no bin


@dataclass
class Rig:
    devices: SimCellDevices
    endpoints: Endpoints
    robot: RobotDriver
    ft: FTSensor | None = None
    samples: Subscription[Wrench] | None = None
    plc: PlcClient | None = None

    @property
    def cell(self) -> SimCell:
        return self.devices.cell


@asynccontextmanager
async def rig(*, ft: bool = False, plc: bool = False, seed: int = 0) -> AsyncIterator[Rig]:
    """The cell's servers plus the real robot driver (and, on request, the F/T and PLC clients)."""
    devices = SimCellDevices(SimCellConfig(opcua_port=0, modbus_port=0, ft_port=0, seed=seed, time_scale=FAST))
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(START_S):
            ep: Endpoints = await tg.start(devices.serve)
            r = Rig(devices, ep, RobotDriver(RobotConfig(port=ep.modbus[1], reconnect_initial_s=0.02)))
            await tg.start(r.robot.run)
            await r.robot.wait_ready()
            if ft:
                r.ft = FTSensor(FTConfig(host=LOCAL, port=ep.ft[1], bind_host=LOCAL))
                r.samples = r.ft.samples.subscribe(maxlen=100_000)
                await tg.start(r.ft.run)
            if plc:
                backoff = BackoffConfig(initial_s=0.05, max_s=0.4, jitter_s=0.02)
                r.plc = PlcClient(
                    PlcConfig(url=ep.opcua_url, publishing_interval_ms=20.0, resume_after_seq=0, backoff=backoff)
                )
                await tg.start(r.plc.run)
        yield r
        tg.cancel_scope.cancel()


async def until(predicate: Callable[[], bool], within: float = WAIT_S) -> None:
    """Wait, bounded, for a condition on in-process state that has no event of its own."""
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 -- a 5 ms poll of plain attributes
            await anyio.sleep(0.005)


async def run(r: Rig, primitive: str, params: dict[str, float] | None = None) -> PrimitiveResult:
    return await r.robot.execute(primitive, params or {}, timeout=WAIT_S)


async def grasp_arrival(r: Rig) -> Item:
    """Wait for the conveyor's item at the pick-up point and grasp it."""
    await until(lambda: r.cell.arriving is not None)
    item = r.cell.arriving
    assert item is not None
    res = await run(r, "grasp")
    assert res.outcome is Outcome.DONE, res
    assert r.cell.held == item and r.cell.arriving != item  # the conveyor may index the next one at once
    return item


# --- ground-truth helpers: where things are in the world ------------------------------------------------------------


def free_spot(cell: SimCell, item: Item) -> tuple[int, float, float]:
    """A bin and a floor point (bin frame) where the item, belted straight in, fits without meeting anything."""
    w, h, d = item.size_mm
    for i, b in enumerate(cell.pod.bins):
        if h > b.height_mm or d > b.depth_mm:
            continue
        x = 5.0
        while x + w <= b.width_mm - 5.0:
            z = b.depth_mm - d
            for o in b.items:  # as the eject physics does: the belts drive it in until it meets something
                if min(o.hi[0], x + w) - max(o.lo[0], x) > EPS and min(o.hi[1], h) - max(o.lo[1], 0.0) > EPS:
                    z = min(z, o.lo[2] - d)
            if z >= 0:
                return i, x, 0.0
            x += 5.0
    raise AssertionError("no free spot for the item in this world; pick another seed")


def frontmost_at(items: list[PlacedItem], x: float, y: float) -> PlacedItem | None:
    hits = [q for q in items if q.lo[0] <= x <= q.hi[0] and q.lo[1] <= y <= q.hi[1]]
    return min(hits, key=lambda q: q.lo[2]) if hits else None


def face_point(cell: SimCell) -> tuple[int, PlacedItem, float, float]:
    """An item (light, so extract never leaks) and the centre of its front face, where it is frontmost."""
    for i, b in enumerate(cell.pod.bins):
        for p in b.items:
            x, y = (p.lo[0] + p.hi[0]) / 2, (p.lo[1] + p.hi[1]) / 2
            if p.item.mass_kg < 1.5 and frontmost_at(b.items, x, y) == p:
                return i, p, x, y
    raise AssertionError("no exposed light item; pick another seed")


def empty_point(cell: SimCell) -> tuple[int, float, float]:
    """A point on a bin's face with no item behind it."""
    for i, b in enumerate(cell.pod.bins):
        for xi in range(1, int(b.width_mm // 10)):
            for yi in range(1, int(b.height_mm // 10)):
                if frontmost_at(b.items, xi * 10.0, yi * 10.0) is None:
                    return i, xi * 10.0, yi * 10.0
    raise AssertionError("every bin face is covered")


def pod_point(r: Rig, i: int, x: float, y: float) -> dict[str, float]:
    px, py = r.devices.frame().to_pod(i, x, y)
    return {"x": px, "y": py}


# --- the robot's primitive model hook -------------------------------------------------------------------------------


@dataclass
class RecordingModel:
    plan: PrimitivePlan | None = None
    begun: list[Primitive] = field(default_factory=list)
    ended: list[bool] = field(default_factory=list)
    ticks: int = 0

    def begin(self, primitive: Primitive, params: list[float], now: float) -> PrimitivePlan | None:
        self.begun.append(primitive)
        return self.plan

    def tick(self, now: float) -> None:
        self.ticks += 1

    def end(self, completed: bool, now: float) -> None:
        self.ended.append(completed)


async def test_model_hook_ends_every_begun_primitive_once() -> None:
    model = RecordingModel()
    sim = SimRobot(SimRobotConfig(port=0, time_scale=0.02), model=model)
    async with anyio.create_task_group() as tg:
        port = await tg.start(sim.serve)
        driver = RobotDriver(RobotConfig(port=port, reconnect_initial_s=0.02))
        await tg.start(driver.run)
        with anyio.fail_after(WAIT_S):
            await driver.wait_ready()
        # completes, with the model's duration (scaled) and ticks meanwhile
        model.plan = PrimitivePlan(duration_s=1.0)
        res = await driver.execute("retract", timeout=WAIT_S)
        assert res.outcome is Outcome.DONE and res.duration_s >= 0.02 and model.ticks > 0
        # the model's fault
        model.plan = PrimitivePlan(duration_s=1.0, fault_at_s=0.5, fault_code=FaultCode.BLADE_JAM)
        res = await driver.execute("extend_blade", timeout=WAIT_S)
        assert (res.outcome, res.fault_code) == (Outcome.FAULT, FaultCode.BLADE_JAM)
        # a stall is ended by the halt the driver sends on its timeout
        model.plan = PrimitivePlan(duration_s=1.0, stall=True)
        res = await driver.execute("approach", timeout=0.2)
        assert res.outcome is Outcome.TIMEOUT
        assert await driver.clear_halt()
        # no plan: the robot's own duration
        model.plan = None
        assert (await driver.execute("open_band", timeout=WAIT_S)).outcome is Outcome.DONE
        assert model.ended == [True, False, False, True]
        tg.cancel_scope.cancel()

    # superseded (BUSY) and controller heartbeat loss, over a raw Modbus client
    model = RecordingModel(plan=PrimitivePlan(duration_s=1.0, stall=True))
    sim = SimRobot(SimRobotConfig(port=0, time_scale=0.02, controller_heartbeat_timeout_s=0.2), model=model)
    async with anyio.create_task_group() as tg:
        port = await tg.start(sim.serve)
        client = AsyncModbusTcpClient(LOCAL, port=port, reconnect_delay=0, retries=0)
        assert await client.connect()
        try:
            await client.write_registers(0, rm.encode_command(Primitive.RETRACT, [0.5]))
            await client.write_register(rm.CMD_SEQ.address, 40)
            await until(lambda: sim.status is Status.BUSY)
            await client.write_register(rm.CMD_SEQ.address, 41)  # a new command while busy
            assert (sim.status, sim.fault_code) == (Status.FAULT, FaultCode.BUSY)
            assert model.ended == [False] and len(model.begun) == 1
            await client.write_register(rm.HEARTBEAT_CTRL.address, 7)  # arm the watchdog, then go silent
            await client.write_register(rm.CMD_SEQ.address, 42)
            await until(lambda: sim.controller_heartbeat_lost)
            assert sim.fault_code == FaultCode.CONTROLLER_HEARTBEAT_LOST
            assert model.ended == [False, False] and len(model.begun) == 2
        finally:
            client.close()
        tg.cancel_scope.cancel()


def test_config_rejects_unknown_fault_profile_and_slow_time() -> None:
    with pytest.raises(ValidationError, match="unknown fault profile"):
        SimCellConfig(faults="apocalyptic")
    with pytest.raises(ValidationError):
        SimCellConfig(time_scale=2.0)
    assert SimCellConfig(faults="harsh").faults == "harsh"


def test_sweep_and_eject_params_follow_the_pod_frame() -> None:
    devices = SimCellDevices(SimCellConfig(opcua_port=0, modbus_port=0, ft_port=0))
    model, frame = devices.model, devices.frame()
    b1 = frame.bin(1)  # bottom row, second column
    # sweep left from bin 1's right wall: the bin is the one pushed into, not its neighbour
    right = b1.x0_mm + b1.width_mm
    params = model.translate(Primitive.SWEEP, [100.0, 200.0, right, b1.y0_mm + 40.0, b1.y0_mm + 80.0, -1.0])
    assert params == {"bin": 1.0, "x": b1.width_mm, "direction": -1.0, "distance": 100.0, "y_lo": 40.0, "y_hi": 80.0}
    params = model.translate(Primitive.SWEEP, [100.0, 200.0, b1.x0_mm, 40.0, 80.0, 1.0])
    assert params["bin"] == 1.0 and params["x"] == 0.0 and params["direction"] == 1.0
    # eject acts at the last approach point, rotated when the approach turned the tool by 90 degrees
    model.translate(Primitive.APPROACH, [b1.x0_mm + 12.0, 30.0, 0.0, 90.0, 0.5])
    assert model.translate(Primitive.EJECT_ITEM, [300.0]) == {"bin": 1.0, "x": 12.0, "y": 30.0, "rotated": 1.0}


# --- the cell over the wire -----------------------------------------------------------------------------------------


async def test_pod_and_arrivals_come_from_the_world_one_at_a_time() -> None:
    async with rig(plc=True) as r:
        assert r.plc is not None
        arrivals = r.plc.arrivals.subscribe()
        pods = r.plc.pod.subscribe()
        with anyio.fail_after(WAIT_S):
            pod = await pods.receive()
            first = await arrivals.receive()
        assert pod.pod_id == r.cell.pod.pod_id
        assert [(b.width_mm, b.height_mm, b.depth_mm) for b in pod.layout.bins] == [
            (b.width_mm, b.height_mm, b.depth_mm) for b in r.cell.pod.bins
        ]
        item = r.cell.arriving
        assert item is not None and first.item_id == str(item.item_id)
        w, h, d = item.size_mm
        assert (first.width_mm, first.height_mm, first.length_mm) == (round(w, 1), round(h, 1), round(d, 1))
        assert first.weight_kg == round(item.mass_kg, 3)
        # the conveyor indexes in 75 ms; nothing more comes while the item is neither acknowledged nor taken
        with anyio.move_on_after(0.4):
            extra = await arrivals.receive()
            pytest.fail(f"a second arrival before the acknowledge: {extra}")
        assert await r.plc.call("acknowledge_item", first.item_id) is True
        await grasp_arrival(r)
        with anyio.fail_after(WAIT_S):
            second = await arrivals.receive()
        assert second.seq == first.seq + 1 and second.item_id != first.item_id
        assert list(r.devices.posted) == [int(first.item_id), int(second.item_id)]
        # the FC rotates the pod: the new one is presented once, and the robot's frame follows it
        assert await r.devices.present_pod() is False
        r.cell.pod = r.cell._new_pod()
        assert await r.devices.present_pod() is True
        with anyio.fail_after(WAIT_S):
            new = await pods.receive()
        assert new.pod_id == r.cell.pod.pod_id != pod.pod_id and new.seq == pod.seq + 1
        assert r.devices.frame().layout == new.layout


async def test_stow_puts_the_item_into_the_bin_and_ft_feels_the_eject() -> None:
    async with rig(ft=True) as r:
        assert r.samples is not None
        item = await grasp_arrival(r)
        i, x, y = free_spot(r.cell, item)
        assert (await run(r, "approach", pod_point(r, i, x, y))).outcome is Outcome.DONE
        r.samples.drain()
        res = await run(r, "eject_item")
        during = r.samples.drain()
        assert res.outcome is Outcome.DONE, res
        placed = r.cell.pod.bins[i].get(item.item_id)
        assert placed.lo[0] == pytest.approx(x) and r.cell.held is None
        # belt friction 0.4 g m + 1 N, ramped in over the second half of the motion
        assert len(during) > 20
        assert min(s.fz for s in during) < -1.0
        # the contact is cleared when the motion ends
        with anyio.fail_after(WAIT_S):
            while (await r.samples.receive()).fz != 0.0:
                pass


async def test_halt_mid_eject_leaves_the_item_on_the_tool() -> None:
    async with rig() as r:
        item = await grasp_arrival(r)
        i, x, y = free_spot(r.cell, item)
        assert (await run(r, "approach", pod_point(r, i, x, y))).outcome is Outcome.DONE
        r.devices.robot.stall_next()  # the eject runs until the halt
        async with anyio.create_task_group() as tg:
            results: list[PrimitiveResult] = []

            async def eject() -> None:
                results.append(await run(r, "eject_item"))

            tg.start_soon(eject)
            await until(lambda: r.devices.robot.status is Status.BUSY)
            assert await r.robot.halt()
        assert results[0].outcome is Outcome.FAULT and results[0].fault_code == FaultCode.HALTED
        assert r.cell.held == item
        assert all(p.item_id != item.item_id for b in r.cell.pod.bins for p in b.items)
        assert r.devices.model.effects[-1] == ("eject_item", False, "item still on the tool")


async def test_attach_on_a_face_seals_and_extract_takes_the_item_out() -> None:
    async with rig() as r:
        i, target, x, y = face_point(r.cell)
        assert (await run(r, "approach", pod_point(r, i, x, y))).outcome is Outcome.DONE
        res = await run(r, "attach", {"vacuum": -50.0})
        assert res.outcome is Outcome.DONE, res
        assert r.devices.robot.suction_kpa < -50.0
        res = await run(r, "extract")
        assert res.outcome is Outcome.DONE, res
        assert all(p.item_id != target.item_id for p in r.cell.pod.bins[i].items)
        assert r.cell.held == target.item
        assert (await run(r, "place", OFF_POD)).outcome is Outcome.DONE
        assert r.cell.tote == [target.item] and r.cell.held is None


async def test_attach_at_an_empty_point_does_not_seal() -> None:
    async with rig() as r:
        i, x, y = empty_point(r.cell)
        before = [list(b.items) for b in r.cell.pod.bins]
        assert (await run(r, "approach", pod_point(r, i, x, y))).outcome is Outcome.DONE
        res = await run(r, "attach", {"vacuum": -50.0})
        assert (res.outcome, res.fault_code) == (Outcome.FAULT, FaultCode.SUCTION_NOT_REACHED)
        assert r.devices.model.params is not None and r.devices.model.params["item"] == 0.0
        # extract there pulls nothing out either
        await run(r, "extract")
        assert [list(b.items) for b in r.cell.pod.bins] == before and r.cell.held is None


async def test_a_model_exception_faults_the_primitive_and_the_server_keeps_answering(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with rig() as r:
        assert (await run(r, "approach", OFF_POD)).outcome is Outcome.DONE  # off the pod is fine for a move
        res = await run(r, "eject_item")  # but there is no bin to eject into
        assert (res.outcome, res.fault_code) == (Outcome.FAULT, FaultCode.BAD_PARAMETER)

        def broken(*_args: Any) -> Any:
            raise RuntimeError("model bug")

        monkeypatch.setattr(r.cell, "physics", broken)
        res = await run(r, "retract")
        assert (res.outcome, res.fault_code) == (Outcome.FAULT, FaultCode.BAD_PARAMETER)
        monkeypatch.undo()
        assert (await run(r, "approach", OFF_POD)).outcome is Outcome.DONE


def test_model_needs_a_positive_time_scale() -> None:
    cell = SimCell(0, profile("none"))
    robot = SimRobot()
    with pytest.raises(ValueError, match="time_scale"):
        CellRobotModel(cell, lambda: None, SimFTSensor(), robot, 0.0)  # type: ignore[arg-type,return-value]


async def test_a_busy_opcua_port_fails_the_start_with_one_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with socket.socket() as busy:
        busy.bind((LOCAL, 0))
        busy.listen()
        port = busy.getsockname()[1]
        devices = SimCellDevices(SimCellConfig(opcua_port=port, modbus_port=0, ft_port=0, time_scale=FAST))
        message = f"PLC (OPC UA): cannot listen on {LOCAL}:{port}: the port is in use"
        refused = pytest.RaisesExc(DeviceStartError, match=f"^{re.escape(message)}$")
        with anyio.fail_after(START_S), pytest.RaisesGroup(refused, flatten_subgroups=True):
            async with anyio.create_task_group() as tg:
                await tg.start(devices.serve)
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []  # asyncua logged no traceback


def test_cellctl_run_on_a_busy_opcua_port_exits_2_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind((LOCAL, 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "cell.toml"
        cfg.write_text(f'[log]\ndir = "{tmp_path}"\n[fc]\nport = 0\n[sim]\nopcua_port = {port}\ntime_scale = {FAST}\n')
        done = subprocess.run(
            [sys.executable, "-m", "cellctl", "run", "--config", str(cfg)], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: PLC (OPC UA): cannot listen on {LOCAL}:{port}: the port is in use"]
