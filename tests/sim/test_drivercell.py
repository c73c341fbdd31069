"""DriverWorkcell's guards over the real protocols: force reflex, stale F/T, interlocks, halt latch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

from cellctl.drivercell import DriverWorkcell
from cellctl.runcell import WorldCamera
from cellctl.worldperception import WorldPerception
from drivers.ft import FTConfig, FTSensor, StreamState
from drivers.plc import BackoffConfig, PlcClient, PlcConfig, PlcStatus
from drivers.robot import RobotConfig, RobotDriver
from drivers.sim.cell_devices import SimCellConfig, SimCellDevices
from statecharts.workcell import Interlocks, Motion, MotionOutcome, Primitive

pytestmark = pytest.mark.anyio
WAIT_S = 10.0


@dataclass
class Cell:
    devices: SimCellDevices
    port: DriverWorkcell
    ft: FTSensor
    plc: PlcClient


@asynccontextmanager
async def driver_cell() -> AsyncIterator[Cell]:
    devices = SimCellDevices(SimCellConfig(opcua_port=0, modbus_port=0, ft_port=0, seed=2, time_scale=0.05))
    async with anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT_S):
            ep = await tg.start(devices.serve)
            plc = PlcClient(PlcConfig(url=ep.opcua_url, publishing_interval_ms=20.0, resume_after_seq=0,
                                      backoff=BackoffConfig(initial_s=0.05, max_s=0.4, jitter_s=0.02)))
            robot = RobotDriver(RobotConfig(port=ep.modbus[1], reconnect_initial_s=0.02))
            ft = FTSensor(FTConfig(host="127.0.0.1", port=ep.ft[1], bind_host="127.0.0.1"))
            perception = WorldPerception(devices.cell)
            port = DriverWorkcell(plc=plc, robot=robot, ft=ft, perception=perception, frames=WorldCamera(perception))
            for task in (plc.run, robot.run, ft.run, port.run):
                await tg.start(task)
            await plc.wait_connected()
            await robot.wait_ready()
            with ft.status.subscription() as sub:
                while ft.state is not StreamState.LIVE:
                    await sub.receive()
            with plc.pod.subscription() as pods:
                if plc.last_pod is None:
                    await pods.receive()
        yield Cell(devices, port, ft, plc)
        tg.cancel_scope.cancel()


def approach(limit_n: float | None) -> Motion:
    return Motion(primitive=Primitive.APPROACH, params={"bin": 0.0, "x": 20.0, "y": 0.0}, timeout_s=5.0,
                  force_limit_n=limit_n, backoff_mm=20.0)


async def test_force_limit_halts_backs_off_and_releases_the_latch() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            # the approach brushes the band and bin (~1.5 N of modelled contact): a 0.6 N limit must trip
            tripped = await c.port.move(approach(0.6))
            assert tripped.outcome is MotionOutcome.FORCE_LIMIT, tripped
            assert tripped.peak_force_n > 0.6 and "backed off" in tripped.detail
            assert c.port.guard.trips == 1
            assert c.devices.robot.halt_times, "HALT reached the robot"
            again = await c.port.move(approach(25.0))  # the latch was released: the next motion runs
            assert again.outcome is MotionOutcome.DONE, again


async def test_no_guarded_motion_without_a_live_ft_stream() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            with c.ft.status.subscription() as sub:
                c.devices.ft.stall(3.0)
                while c.ft.state is not StreamState.STALE:
                    await sub.receive()
            refused = await c.port.move(approach(25.0))
            assert refused.outcome is MotionOutcome.UNAVAILABLE and "F/T" in refused.detail
            unguarded = await c.port.move(Motion(primitive=Primitive.RETRACT, timeout_s=5.0))
            assert unguarded.outcome is MotionOutcome.DONE


async def test_interlocks_tripped_or_unknown_are_not_ok() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            values = c.port.interlocks()
            first: Interlocks = await values.__anext__()
            assert first.ok
            await c.devices.plc.set_interlock("light_curtain_broken", True)
            tripped = await values.__anext__()
            assert not tripped.ok and "light_curtain_broken" in tripped.detail
            await c.devices.plc.set_interlock("light_curtain_broken", False)
            assert (await values.__anext__()).ok
            c.plc.status.publish(PlcStatus("disconnected", "test: link cut"))  # what the driver says on a loss
            lost = await values.__anext__()
            assert not lost.ok and "PLC disconnected" in lost.detail
            await values.aclose()
