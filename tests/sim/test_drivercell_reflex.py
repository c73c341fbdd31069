"""DriverWorkcell with the force reflex in its own process (as `cellctl run` runs it), over the real protocols:
a trip halts, backs off and releases the latch (the reflex's HALT is this controller's, not someone else's);
a foreign HALT during an armed motion is still someone else's; no guarded motion once the reflex is gone."""

from __future__ import annotations

import os
import signal

import anyio
import pytest
from driver_cells import WAIT_S, approach, driver_cell
from pymodbus.client import AsyncModbusTcpClient

from drivers import robot_map as rm
from statecharts.workcell import MotionOutcome

pytestmark = pytest.mark.anyio


async def test_a_reflex_process_trip_halts_backs_off_and_the_latch_is_ours_to_release() -> None:
    async with driver_cell(reflex_process=True) as c:
        with anyio.fail_after(WAIT_S):
            tripped = await c.port.move(approach(0.6))  # the approach brushes ~1.5 N of modelled contact
            assert tripped.outcome is MotionOutcome.FORCE_LIMIT, tripped
            assert "backed off" in tripped.detail
            assert c.devices.robot.halt_times, "HALT reached the robot"
            assert c.port.guard.trips == 0  # the in-loop guard did not do it
            assert not c.port.robot.external_halt and c.port.robot.incidents["external_halt"] == 0
            again = await c.port.move(approach(25.0))
            assert again.outcome is MotionOutcome.DONE, again


async def test_a_foreign_halt_during_an_armed_motion_is_still_foreign() -> None:
    async with driver_cell(reflex_process=True) as c:
        with anyio.fail_after(WAIT_S):
            panel = AsyncModbusTcpClient("127.0.0.1", port=c.modbus_port, timeout=1.0)
            assert await panel.connect()
            c.devices.robot.stall_next()
            results = []
            async with anyio.create_task_group() as tg:

                async def move() -> None:
                    results.append(await c.port.move(approach(25.0)))

                tg.start_soon(move)
                while c.port.robot.state is None or c.port.robot.state.status is not rm.Status.BUSY:
                    await c.port.robot.read_tool()
                await panel.write_register(rm.HALT.address, 1, device_id=1)
            [halted] = results
            assert halted.outcome is MotionOutcome.FAULT and "halted externally" in halted.detail, halted
            assert c.port.robot.external_halt
            panel.close()


async def test_no_guarded_motion_once_the_reflex_process_is_gone() -> None:
    async with driver_cell(reflex_process=True) as c:
        with anyio.fail_after(WAIT_S):
            reflex = c.port.reflex
            assert reflex is not None and reflex.pid is not None
            os.kill(reflex.pid, signal.SIGKILL)
            await reflex.wait_alive(False)
            refused = await c.port.move(approach(25.0))
            assert refused.outcome is MotionOutcome.UNAVAILABLE and "no force-guarded motion" in refused.detail
