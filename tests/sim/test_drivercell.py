"""DriverWorkcell's guards over the real protocols: force reflex, stale F/T, interlocks, halt latch."""

from __future__ import annotations

import anyio
import pytest
from driver_cells import WAIT_S, approach, driver_cell

from drivers.ft import StreamState
from drivers.plc import PlcStatus
from statecharts.workcell import Interlocks, Motion, MotionOutcome, Primitive

pytestmark = pytest.mark.anyio


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


async def test_a_guarded_motion_waits_out_a_short_ft_dropout_and_never_starts_blind() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            with c.ft.status.subscription() as sub:
                c.devices.ft.stall(0.3)  # shorter than ft_live_wait_s (1 s): a stalled loop, a lost burst
                while c.ft.state is not StreamState.STALE:
                    await sub.receive()
            with c.ft.status.subscription() as seen:
                done = await c.port.move(approach(25.0))
                states = [s.state for s in seen.drain()]
            assert done.outcome is MotionOutcome.DONE, done
            assert StreamState.LIVE in states  # it started only once the stream was back


async def test_interlocks_tripped_or_unknown_are_not_ok() -> None:
    async with driver_cell() as c:
        with anyio.fail_after(WAIT_S):
            values = c.port.interlocks()
            first: Interlocks = await values.__anext__()
            while "unknown" in first.detail:  # before the PLC's first value (a loaded machine): not ok, then a value
                assert not first.ok
                first = await values.__anext__()
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
