"""The reflex process over loopback, against the real simulated F/T sensor and robot (in a thread of their own,
so that a test can block its own event loop while they keep running)."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from cellctl.runtime.reflex_process import (
    ReflexConfig,
    ReflexProcess,
    ReflexRefused,
    ReflexTrip,
    ReflexUnavailable,
)
from cellctl.runtime.reflex_process import child as proto
from drivers import robot_map as rm
from drivers.ft import HEADER, RECORD, REQUEST, Command, FTConfig, FTSensor, StreamState, Wrench, encode_request
from drivers.sim.ft_sensor import SimFTConfig, SimFTSensor
from drivers.sim.robot import SimRobot, SimRobotConfig

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]

LIMIT_N = 20.0
WAIT_S = 3.0  # generous bound for conditions that normally hold within milliseconds


@dataclass
class Rig:
    """SimFTSensor and SimRobot served by an event loop in another thread."""

    portal: BlockingPortal
    ft: SimFTSensor
    robot: SimRobot
    ft_port: int
    robot_port: int
    halted: threading.Event = field(default_factory=threading.Event)
    tasks: list[Future[object]] = field(default_factory=list)

    def force(self, fz: float) -> None:
        self.ft.contact.set(fz=fz)  # read by the sensor's loop at its next record

    def config(self, **overrides: object) -> ReflexConfig:
        values: dict[str, object] = {"sensor_port": self.ft_port, "robot_port": self.robot_port,
                                     "sched_priority": 0, "restart_initial_s": 0.3}
        values.update(overrides)
        return ReflexConfig(**values)


@contextmanager
def sim_rig() -> Iterator[Rig]:
    with start_blocking_portal() as portal:
        ft = SimFTSensor(SimFTConfig(port=0, rate_hz=1000))
        ft.contact.set(fz=5.0)
        rig_halted = threading.Event()
        robot = SimRobot(SimRobotConfig(port=0), on_halt=lambda t: rig_halted.set())
        ft_task, ft_port = portal.start_task(ft.serve)
        robot_task, robot_port = portal.start_task(robot.serve)
        rig = Rig(portal, ft, robot, ft_port, robot_port, rig_halted, [ft_task, robot_task])
        try:
            yield rig
        finally:
            for task in rig.tasks:
                task.cancel()
            for task in rig.tasks:
                with contextlib.suppress(BaseException):  # cancelled
                    task.result(timeout=5)


async def wait_thread_event(event: threading.Event, within_s: float = WAIT_S) -> bool:
    return await anyio.to_thread.run_sync(event.wait, within_s)


@asynccontextmanager
async def running(reflex: ReflexProcess, *, guard_ready: bool = True) -> AsyncIterator[anyio.abc.TaskGroup]:
    async with anyio.create_task_group() as tg:
        await tg.start(reflex.run)
        if guard_ready:
            with anyio.fail_after(WAIT_S):
                await reflex.wait_can_guard()
        yield tg
        tg.cancel_scope.cancel()


def relayed_sensor(reflex: ReflexProcess) -> FTSensor:
    host, port = reflex.relay
    return FTSensor(FTConfig(host=host, port=port))


async def wait_state(ft: FTSensor, state: StreamState) -> None:
    with ft.status.subscription() as sub, anyio.fail_after(WAIT_S):
        while ft.state is not state:
            await sub.receive()


def test_wire_formats_agree_with_the_drivers() -> None:
    assert (proto.RDT_HEADER, proto.REQUEST.format, proto.RECORD.format) == (HEADER, REQUEST.format, RECORD.format)
    assert (proto.CMD_STOP, proto.CMD_START, proto.CMD_BIAS) == (Command.STOP, Command.START, Command.BIAS)
    assert rm.HALT.address == proto.HALT_ADDRESS and rm.HALT.table == "hr"
    assert set(proto.DEFAULTS) <= set(ReflexConfig.model_fields)
    counts = (12_345, -678_901, 30_000_001)
    w = Wrench(1, 1, 0, *(c / 1e6 for c in counts), 0.0, 0.0, 0.0, 0.0)
    assert proto.force_magnitude(*counts, 1e6) == w.force_magnitude  # bit for bit


async def test_armed_crossing_halts_the_robot_and_reports_the_trip_with_its_token() -> None:
    trips: list[ReflexTrip] = []
    announced: list[int] = []
    got_trip = anyio.Event()

    def on_trip(trip: ReflexTrip) -> None:
        trips.append(trip)
        got_trip.set()

    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config(), on_trip=on_trip, on_halting=lambda token, reason: announced.append(token))
        async with running(reflex):
            token = await reflex.arm(LIMIT_N)
            rig.force(35.0)
            assert await wait_thread_event(rig.halted), "no HALT reached the robot"
            assert rig.robot.halted  # latched at the robot
            with anyio.fail_after(WAIT_S):
                await got_trip.wait()
            trip = trips[0]
            assert trip.token == token and trip.halt_ok and trip.reason == "force"
            assert trip.force_n == pytest.approx(35.0) and trip.limit_n == LIMIT_N
            assert trip.t_recv <= trip.detected_at <= trip.sent_at <= trip.halted_at
            assert rig.robot.halt_times[0] <= trip.halted_at  # the robot had it before the child heard back
            assert announced == [token]
            assert await reflex.disarm(token) == trip
            stats = await reflex.query_stats()
            assert stats["trips"] == 1 and stats["halts_failed"] == 0  # one trip per arming
            assert len(rig.robot.halt_times) == 1


async def test_disarmed_the_same_crossing_does_not_halt() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config())
        async with running(reflex) as tg:
            ft = relayed_sensor(reflex)
            await tg.start(ft.run)
            await wait_state(ft, StreamState.LIVE)
            token = await reflex.arm(LIMIT_N)
            assert await reflex.disarm(token) is None
            checked = (await reflex.query_stats())["checked"]
            above = 0
            with ft.samples.subscription() as samples, anyio.fail_after(WAIT_S):
                rig.force(35.0)
                while above < 50:  # 50 samples over the limit went through the reflex and the relay
                    above += (await samples.receive()).fz > LIMIT_N
            stats = await reflex.query_stats()
            assert stats["trips"] == 0 and stats["checked"] == checked  # disarmed: it only relays
            assert not rig.halted.is_set() and not rig.robot.halted and reflex.trip_for(token) is None


async def test_an_unchanged_ftsensor_pointed_at_the_relay_goes_live_and_its_stop_does_not_stop_the_sensor() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config())
        async with running(reflex):
            ft = relayed_sensor(reflex)
            rig.force(12.5)
            async with anyio.create_task_group() as ft_tg:
                ft_tg.start_soon(ft.run)
                await wait_state(ft, StreamState.LIVE)
                with ft.samples.subscription() as samples, anyio.fail_after(WAIT_S):
                    got = [await samples.receive() for _ in range(100)]
                seqs = [w.rdt_sequence for w in got]
                assert seqs == list(range(seqs[0], seqs[0] + 100))  # contiguous, nothing lost on the way
                assert all(w.fz == pytest.approx(12.5) for w in got)
                assert ft.stats.rejected == 0 and ft.incidents["foreign_source"] == 0
                ft_tg.cancel_scope.cancel()  # FTSensor sends STOP to the relay as it ends
            with anyio.fail_after(WAIT_S):
                while (stats := await reflex.query_stats())["relay_stops"] < 1:
                    pass  # each query is a round trip: the stop is handled by one of the next
            assert stats["stream"] == "live" and rig.ft.streaming  # the reflex keeps its stream
            await reflex.arm(LIMIT_N)  # and can still guard


async def test_the_reflex_halts_while_the_main_event_loop_is_blocked_holding_the_gil() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config())
        async with running(reflex):
            token = await reflex.arm(LIMIT_N)
            rig.force(35.0)
            # A synchronous section: the event loop does not run and this thread holds the GIL but for the
            # interpreter's forced switches, so the sims (another thread) run slowly. An in-loop guard cannot
            # halt before this returns; the reflex process does.
            start = time.perf_counter()
            while not rig.halted.is_set() and time.perf_counter() - start < 5.0:
                pass
            blocked_until = time.perf_counter()
            assert rig.halted.is_set(), "no HALT while the event loop was blocked"
            assert rig.robot.halt_times[0] < blocked_until
            trip = await reflex.disarm(token)
            # The HALT reached the robot (above); its Modbus reply may come too late for `halt_ok`, since the
            # simulated robot runs in a thread of this process that the loop above starves of the GIL.
            assert trip is not None and trip.token == token
            assert trip.sent_at < blocked_until


async def test_killed_child_is_not_alive_arm_raises_and_the_relayed_stream_goes_stale_until_it_restarts() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config(restart_initial_s=0.5))
        async with running(reflex) as tg:
            ft = relayed_sensor(reflex)
            await tg.start(ft.run)
            await wait_state(ft, StreamState.LIVE)
            relay, pid = reflex.relay, reflex.pid
            assert pid is not None
            with ft.status.subscription() as status:
                os.kill(pid, signal.SIGKILL)
                with anyio.fail_after(WAIT_S):
                    await reflex.wait_alive(False)
                with pytest.raises(ReflexUnavailable):
                    await reflex.arm(LIMIT_N)
                with anyio.fail_after(WAIT_S):
                    while (await status.receive()).state is not StreamState.STALE:
                        pass
            assert not reflex.can_guard
            # restarted after its backoff on the same relay port: the FTSensor's own re-requests find it
            with anyio.fail_after(WAIT_S):
                await reflex.wait_can_guard()
            assert reflex.relay == relay and reflex.pid != pid and reflex.restarts == 1
            await wait_state(ft, StreamState.LIVE)
            await reflex.arm(LIMIT_N)


async def test_foreign_datagrams_are_counted_never_relayed_and_never_trip() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config())
        async with running(reflex):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                client.bind(("127.0.0.1", 0))
                client.sendto(encode_request(Command.START), reflex.relay)
                client.settimeout(WAIT_S)
                client.recvfrom(64)  # the relay streams to us
                token = await reflex.arm(LIMIT_N)
                forged = RECORD.pack(7, 7, 0, 0, 0, 500_000_000, 0, 0, 0)  # 500 N: a trip, were it accepted
                for payload in (forged, b"junk"):
                    intruder.sendto(payload, ("127.0.0.1", reflex.sensor_port))
                with anyio.fail_after(WAIT_S):
                    while (stats := await reflex.query_stats())["foreign"] < 2:
                        pass
                # A relayed forgery would be queued here already (loopback delivers on send): drain the queue,
                # then a few fresh datagrams to show the relay still streams.
                client.setblocking(False)
                relayed = []
                with contextlib.suppress(BlockingIOError):
                    while True:
                        relayed.append(client.recvfrom(64)[0])
                client.settimeout(WAIT_S)
                relayed += [client.recvfrom(64)[0] for _ in range(5)]
                assert forged not in relayed and b"junk" not in relayed
                assert all(len(d) == RECORD.size for d in relayed)
                assert stats["trips"] == 0 and not rig.halted.is_set()
                assert await reflex.disarm(token) is None
            finally:
                client.close()
                intruder.close()


async def test_bad_control_input_is_refused_and_the_child_stays_up() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config())
        async with running(reflex):
            for bad in (math.nan, math.inf, -1.0, 0.0):
                with pytest.raises(ValueError, match="force limit"):
                    await reflex.arm(bad)
            # past the façade, straight to the child
            reply = await reflex._request("arm", token=1000, limit_n=math.nan)
            assert not reply["ok"] and "finite positive" in reply["error"]
            reply = await reflex._request("arm", token=1001, limit_n="20")
            assert not reply["ok"]
            reply = await reflex._request("disarm", token=4242)
            assert not reply["ok"] and "unknown token" in reply["error"]
            assert reflex._sock is not None
            reflex._sock.send(b"{not json")
            stats = await reflex.query_stats()
            assert stats["bad_control"] == 1 and stats["arms"] == 0 and reflex.alive
            # a stale token (lower than one already armed) cannot arm
            reply = await reflex._request("arm", token=5000, limit_n=LIMIT_N)
            assert reply["ok"]
            reply = await reflex._request("arm", token=4999, limit_n=LIMIT_N)
            assert not reply["ok"] and "stale token" in reply["error"]


async def test_no_arming_without_a_live_stream_and_a_stream_lost_while_armed_halts() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config())
        async with running(reflex):
            token = await reflex.arm(LIMIT_N)
            rig.portal.call(rig.ft.stall, 1.0)
            assert await wait_thread_event(rig.halted), "stream lost while armed: no HALT"
            trip = await reflex.disarm(token)
            assert trip is not None and trip.reason == "stale" and trip.halt_ok
            with anyio.fail_after(WAIT_S):
                while reflex.can_guard:
                    await reflex.query_stats()
            with pytest.raises(ReflexRefused, match="stream"):
                await reflex.arm(LIMIT_N)


async def test_a_halt_the_robot_cannot_take_is_reported_failed_at_once_and_the_link_returns_with_the_robot() -> None:
    with sim_rig() as rig:
        tripped = anyio.Event()
        reflex = ReflexProcess(rig.config(), on_trip=lambda trip: tripped.set())
        async with running(reflex):
            token = await reflex.arm(LIMIT_N)
            robot_task = rig.tasks.pop()
            robot_task.cancel()  # the robot goes away while the motion is guarded
            with contextlib.suppress(BaseException):
                await anyio.to_thread.run_sync(robot_task.result, WAIT_S)
            rig.force(35.0)
            with anyio.fail_after(WAIT_S):
                await tripped.wait()
            trip = await reflex.disarm(token)
            assert trip is not None and not trip.halt_ok and "not delivered" in trip.error
            assert trip.halted_at - trip.detected_at < 0.2  # told as soon as every path failed, not at the timeout
            with pytest.raises(ReflexRefused, match="robot halt link"):
                await reflex.arm(LIMIT_N)
            rig.force(5.0)
            halted = threading.Event()
            robot = SimRobot(SimRobotConfig(port=rig.robot_port), on_halt=lambda t: halted.set())
            task, _ = rig.portal.start_task(robot.serve)
            rig.tasks.append(task)
            with anyio.fail_after(WAIT_S):
                await reflex.wait_can_guard()  # reconnected by itself
            token = await reflex.arm(LIMIT_N)
            rig.force(35.0)
            assert await wait_thread_event(halted) and robot.halted
            trip = await reflex.disarm(token)
            assert trip is not None and trip.halt_ok


async def test_start_fails_clearly_when_the_relay_port_is_taken() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        taken.bind(("127.0.0.1", 0))
        reflex = ReflexProcess(ReflexConfig(relay_port=taken.getsockname()[1], sched_priority=0))
        with pytest.raises(ReflexUnavailable, match=r"did not start.*in use"), anyio.fail_after(WAIT_S):
            await reflex.run()
    finally:
        taken.close()


def test_the_child_imports_nothing_heavy() -> None:
    import subprocess

    code = ("import runpy, sys; sys.argv = ['x']; "
            f"runpy.run_path({str(proto.__file__)!r}, run_name='not_main'); "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('anyio', 'pydantic', 'numpy', 'open3d', 'structlog', 'pymodbus', 'asyncio'))))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def test_the_relay_serves_its_first_client_only() -> None:
    with sim_rig() as rig:
        reflex = ReflexProcess(rig.config())
        async with running(reflex):
            first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            thief = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                for s in (first, thief):
                    s.bind(("127.0.0.1", 0))
                    s.settimeout(WAIT_S)
                first.sendto(encode_request(Command.START), reflex.relay)
                first.recvfrom(64)  # the relay streams to its client
                thief.sendto(encode_request(Command.START), reflex.relay)
                with anyio.fail_after(WAIT_S):
                    while (await reflex.query_stats())["relay_refused"] < 1:
                        pass
                received = [first.recvfrom(64)[0] for _ in range(20)]  # still streaming to the first client
                assert all(len(d) == RECORD.size for d in received)
                thief.setblocking(False)
                with pytest.raises(BlockingIOError):
                    thief.recvfrom(64)  # nothing was ever relayed to the thief
            finally:
                first.close()
                thief.close()
