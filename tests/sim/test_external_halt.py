"""A HALT someone else latched (operator panel, safety PLC, another Modbus master) is never released by the
controller, over the real protocols: the motion fails "halted externally", the interlocks go not-ok until whoever
set it releases it, and a tool setpoint changed by another master is noticed and logged."""

from __future__ import annotations

import anyio
import pytest
from driver_cells import WAIT_S, approach, driver_cell
from pymodbus.client import AsyncModbusTcpClient

from drivers import robot_map as rm
from drivers.robot import EventKind
from statecharts.workcell import Motion, MotionOutcome, Primitive

pytestmark = pytest.mark.anyio


async def foreign_master(port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1.0)
    assert await client.connect()
    return client


async def test_a_foreign_halt_fails_the_motion_and_is_never_released() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            panel = await foreign_master(c.modbus_port)
            values = c.port.interlocks()
            assert (await values.__anext__()).ok
            c.devices.robot.stall_next()  # the approach runs until something stops it
            async with anyio.create_task_group() as tg:
                results = []

                async def move() -> None:
                    results.append(await c.port.move(approach(25.0)))

                tg.start_soon(move)
                while c.port.robot.state is None or c.port.robot.state.status is not rm.Status.BUSY:
                    await c.port.robot.read_tool()  # the next poll
                await panel.write_register(rm.HALT.address, 1, device_id=1)  # the operator panel's stop
            [halted] = results
            assert halted.outcome is MotionOutcome.FAULT and "halted externally" in halted.detail, halted
            alarm = await values.__anext__()
            assert not alarm.ok and "halted externally" in alarm.detail
            # Nothing here releases it: the next motions are refused and the latch stays set at the robot.
            for motion in (approach(25.0), Motion(primitive=Primitive.RETRACT, timeout_s=5.0)):
                refused = await c.port.move(motion)
                assert refused.outcome is MotionOutcome.UNAVAILABLE and "halted externally" in refused.detail
            await c.port.halt()  # an abort's halt does not make the latch ours
            assert not await c.port.robot.clear_halt()
            await anyio.sleep(0.3)  # several polls and setpoint checks: still latched
            assert c.devices.robot.halted
            # Whoever set it releases it; then motions run again.
            await panel.write_register(rm.HALT.address, 0, device_id=1)
            released = await values.__anext__()
            assert released.ok, released
            assert (await c.port.move(approach(25.0))).outcome is MotionOutcome.DONE
            await values.aclose()
            panel.close()


async def test_a_halt_latched_while_idle_is_external_and_raises_the_interlock() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            panel = await foreign_master(c.modbus_port)
            values = c.port.interlocks()
            assert (await values.__anext__()).ok
            with c.port.robot.events.subscription() as events:
                await panel.write_register(rm.HALT.address, 1, device_id=1)
                while (await events.receive()).kind is not EventKind.EXTERNAL_HALT:
                    pass
            assert not (await values.__anext__()).ok
            assert c.port.robot.incidents["external_halt"] == 1
            await values.aclose()
            panel.close()


async def test_our_own_halt_is_released_and_not_taken_for_a_foreign_one() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            for _ in range(3):
                await c.port.halt()
                assert (await c.port.move(approach(25.0))).outcome is MotionOutcome.DONE
            await anyio.sleep(0.3)
            assert not c.port.robot.external_halt and c.port.robot.incidents["external_halt"] == 0


async def test_a_tool_setpoint_changed_by_another_master_is_logged() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            await c.port.robot.set_suction(False)
            other = await foreign_master(c.modbus_port)
            with c.port.robot.events.subscription() as events:
                await other.write_register(rm.SUCTION_VALVE_SP.address, 1, device_id=1)
                event = await events.receive()
                while event.kind is not EventKind.SETPOINT_CHANGED:
                    event = await events.receive()
            assert "SUCTION_VALVE_SP" in event.message
            await c.port.robot.set_hook(True)  # our own writes are not reported
            await anyio.sleep(0.5)
            assert c.port.robot.incidents["setpoint_changed"] == 1
            other.close()
