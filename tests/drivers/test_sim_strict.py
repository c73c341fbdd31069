"""The simulated devices are as strict as real ones (integrators point their tools at them).

PLC over real OPC UA, robot over raw Modbus TCP frames, both on 127.0.0.1.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from asyncua import Client, ua

from drivers import robot_map as rm
from drivers.plc import BackoffConfig, PlcClient, PlcConfig
from drivers.plc_nodes import SIM_NAMESPACE
from drivers.sim.plc import CONTROLLER_APPLICATION_NAME, SPEED_RANGE_MM_S, PlcSim, SimItem
from drivers.sim.robot import SimRobot, SimRobotConfig

pytestmark = pytest.mark.anyio

WAIT_S = 10.0  # bound for anything that should take well under a second
SC = ua.StatusCodes
VT = ua.VariantType


# ---------------------------------------------------------------------------- PLC


def item(item_id: str) -> SimItem:
    return SimItem(item_id=item_id, length_mm=300.0, width_mm=200.0, height_mm=100.0, weight_kg=1.2)


@asynccontextmanager
async def plc_sim(**kwargs: Any) -> AsyncIterator[PlcSim]:
    async with anyio.create_task_group() as tg:
        sim = PlcSim(**kwargs)
        await tg.start(sim.serve)
        yield sim
        tg.cancel_scope.cancel()


@asynccontextmanager
async def ua_client(sim: PlcSim, name: str = "integrator tool", user: str | None = None) -> AsyncIterator[Client]:
    """A plain asyncua client introducing itself as `name` (the controller's driver uses its own name)."""
    client = Client(sim.url, timeout=WAIT_S)
    client.name = client.description = name
    if user is not None:
        client.set_user(user)
        client.set_password("anything")
    async with client:
        yield client


async def node_id(client: Client, path: str) -> ua.NodeId:
    return ua.NodeId(f"StowStation.{path}", await client.get_namespace_index(SIM_NAMESPACE))


async def call_raw(client: Client, method: str, args: list[ua.Variant]) -> ua.CallMethodResult:
    (result,) = await client.uaclient.call(
        [
            ua.CallMethodRequest(
                ObjectId=await node_id(client, "Conveyor"),
                MethodId=await node_id(client, f"Conveyor.{method}"),
                InputArguments=args,
            )
        ]
    )
    return result


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]


async def test_bad_method_arguments_answer_bad_invalid_argument_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with plc_sim() as sim, ua_client(sim, CONTROLLER_APPLICATION_NAME) as client:
        await sim.arrive(item("A-1"))
        bad_calls: dict[str, tuple[str, list[ua.Variant], list[int]]] = {
            "no argument": ("AcknowledgeItem", [], []),
            "two arguments": (
                "AcknowledgeItem",
                [ua.Variant("A-1", VT.String), ua.Variant("A-1", VT.String)],
                [SC.Good, SC.BadInvalidArgument],
            ),
            "an Int32": ("AcknowledgeItem", [ua.Variant(7, VT.Int32)], [SC.BadTypeMismatch]),
            "a String array": ("AcknowledgeItem", [ua.Variant(["A-1"], VT.String)], [SC.BadTypeMismatch]),
            "a null String": ("AcknowledgeItem", [ua.Variant(None, VT.String)], [SC.BadTypeMismatch]),
            "an empty id": ("AcknowledgeItem", [ua.Variant("", VT.String)], [SC.BadInvalidArgument]),
            "an overlong id": ("AcknowledgeItem", [ua.Variant("A" * 10_000, VT.String)], [SC.BadInvalidArgument]),
            "an argument too many": ("IndexConveyor", [ua.Variant(True, VT.Boolean)], [SC.BadInvalidArgument]),
        }
        for what, (method, args, per_argument) in bad_calls.items():
            result = await call_raw(client, method, args)
            assert result.StatusCode.value == SC.BadInvalidArgument, (what, result.StatusCode.name)
            assert [s.value for s in result.InputArgumentResults] == per_argument, what
        assert list(sim.acknowledged) == [] and sim.index_count == 0  # nothing was done by a refused call

        # the high-level API raises the status as such; good calls still work
        with pytest.raises(ua.uaerrors.BadInvalidArgument):
            await client.nodes.objects.call_method(await node_id(client, "Conveyor.AcknowledgeItem"))
        conveyor = client.get_node(await node_id(client, "Conveyor"))
        assert await conveyor.call_method(await node_id(client, "Conveyor.AcknowledgeItem"), "A-1") is True
        assert await conveyor.call_method(await node_id(client, "Conveyor.IndexConveyor")) is True
    assert tracebacks(caplog) == []


async def test_speed_setpoint_refuses_arrays_nan_and_out_of_range_values() -> None:
    lo, hi = SPEED_RANGE_MM_S
    async with plc_sim() as sim, ua_client(sim) as client:
        node = client.get_node(await node_id(client, "Conveyor.SpeedSetpoint"))
        before = await sim.read("conveyor.speed_setpoint")
        refused = {
            "an array": (ua.DataValue(ua.Variant([100.0, 200.0], VT.Double)), SC.BadTypeMismatch),
            "a Float": (ua.DataValue(ua.Variant(100.0, VT.Float)), SC.BadTypeMismatch),
            "a String": (ua.DataValue(ua.Variant("100", VT.String)), SC.BadTypeMismatch),
            "NaN": (ua.DataValue(ua.Variant(math.nan, VT.Double)), SC.BadOutOfRange),
            "inf": (ua.DataValue(ua.Variant(math.inf, VT.Double)), SC.BadOutOfRange),
            "below the range": (ua.DataValue(ua.Variant(lo - 0.5, VT.Double)), SC.BadOutOfRange),
            "above the range": (ua.DataValue(ua.Variant(hi + 0.5, VT.Double)), SC.BadOutOfRange),
            "a Bad status": (
                ua.DataValue(ua.Variant(100.0, VT.Double), StatusCode=ua.StatusCode(SC.BadSensorFailure)),
                SC.BadWriteNotSupported,
            ),
        }
        for what, (dv, expected) in refused.items():
            (status,) = await client.write_values([node], [dv], raise_on_partial_error=False)
            assert status.value == expected, (what, status.name)
            assert await sim.read("conveyor.speed_setpoint") == before, what  # unchanged

        # the range is published, and values inside it (edges included) are taken
        eurange = await (await node.get_child("0:EURange")).read_value()
        assert (eurange.Low, eurange.High) == (lo, hi)
        for good in (lo, 312.5, hi):
            (status,) = await client.write_values([node], [ua.DataValue(ua.Variant(good, VT.Double))], False)
            assert status.is_good()
            assert await sim.read("conveyor.speed_setpoint") == good


async def test_only_the_controllers_session_may_acknowledge_items() -> None:
    async with plc_sim() as sim, anyio.create_task_group() as tg:
        backoff = BackoffConfig(initial_s=0.05, max_s=0.4, jitter_s=0.02)
        controller = PlcClient(PlcConfig(url=sim.url, backoff=backoff))
        await tg.start(controller.run)
        await controller.wait_connected(WAIT_S)
        await sim.arrive(item("B-1"))
        async with ua_client(sim, "integrator tool") as other:
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                conveyor = other.get_node(await node_id(other, "Conveyor"))
                await conveyor.call_method(await node_id(other, "Conveyor.AcknowledgeItem"), "B-1")
            assert list(sim.acknowledged) == []
            assert await controller.call("acknowledge_item", "B-1") is True
            assert list(sim.acknowledged) == ["B-1"]
            # other methods and reads stay open to every session
            assert await conveyor.call_method(await node_id(other, "Conveyor.IndexConveyor")) is True
        tg.cancel_scope.cancel()

    # a sim configured without a controller name lets any session acknowledge
    async with plc_sim(controller_name=None) as sim, ua_client(sim, "integrator tool") as other:
        await sim.arrive(item("C-1"))
        conveyor = other.get_node(await node_id(other, "Conveyor"))
        assert await conveyor.call_method(await node_id(other, "Conveyor.AcknowledgeItem"), "C-1") is True


async def test_the_user_name_admin_gets_no_write_access_to_read_only_tags() -> None:
    async with plc_sim() as sim, ua_client(sim, user="admin") as client:
        node = client.get_node(await node_id(client, "Conveyor.ArrivalSeq"))
        (status,) = await client.write_values([node], [ua.DataValue(ua.Variant(99, VT.UInt32))], False)
        assert status.value == SC.BadUserAccessDenied
        assert await sim.read("conveyor.arrival_seq") == 0


# ---------------------------------------------------------------------------- robot (Modbus TCP)

MBAP = struct.Struct(">HHHB")


def read_hr(tid: int, unit: int = 1, address: int = 0, count: int = 2) -> bytes:
    return MBAP.pack(tid, 0, 6, unit) + struct.pack(">BHH", 3, address, count)


def read_ir(tid: int, unit: int = 1, address: int = 0, count: int = rm.IR_COUNT) -> bytes:
    return MBAP.pack(tid, 0, 6, unit) + struct.pack(">BHH", 4, address, count)


class Frames:
    """Reads whole MBAP frames off a raw socket."""

    def __init__(self, stream: SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def next(self) -> tuple[int, int, bytes]:
        """(transaction id, unit id, PDU) of the next response."""
        while True:
            if len(self.buf) >= MBAP.size:
                tid, protocol, length, unit = MBAP.unpack_from(self.buf)
                assert protocol == 0
                if len(self.buf) >= 6 + length:
                    pdu, self.buf = self.buf[MBAP.size : 6 + length], self.buf[6 + length :]
                    return tid, unit, pdu
            self.buf += await self.stream.receive()

    async def nothing_more(self, within_s: float = 0.3) -> None:
        """Bounded wait for absence: no further byte arrives within `within_s`."""
        assert self.buf == b""
        with anyio.move_on_after(within_s):
            data = await self.stream.receive()
            pytest.fail(f"unexpected data: {data.hex()}")


@asynccontextmanager
async def robot_link(**config: Any) -> AsyncIterator[tuple[SimRobot, Frames]]:
    async with anyio.create_task_group() as tg:
        robot = SimRobot(SimRobotConfig(port=0, **config))
        port = await tg.start(robot.serve)
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            yield robot, Frames(stream)
        tg.cancel_scope.cancel()


async def test_every_pipelined_request_of_a_segment_is_answered() -> None:
    async with robot_link() as (_robot, frames):
        await frames.stream.send(b"".join(read_hr(tid) for tid in range(1, 501)))  # one segment
        with anyio.fail_after(WAIT_S):
            answers = [await frames.next() for _ in range(500)]
        assert [tid for tid, _unit, _pdu in answers] == list(range(1, 501))
        assert all(unit == 1 and pdu[:2] == b"\x03\x04" and len(pdu) == 6 for _tid, unit, pdu in answers)

        # a frame split across segments, with an answer going out in between, is not lost
        second = read_hr(502)
        await frames.stream.send(read_hr(501) + second[:5])
        with anyio.fail_after(WAIT_S):
            assert (await frames.next())[0] == 501
            await frames.stream.send(second[5:])
            assert (await frames.next())[0] == 502
        await frames.nothing_more()


async def test_a_request_for_another_unit_id_gets_no_answer() -> None:
    async with robot_link(unit_id=1) as (robot, frames):
        await frames.stream.send(read_hr(70, unit=7))
        await frames.stream.send(read_hr(71, unit=1))
        with anyio.fail_after(WAIT_S):
            tid, unit, _pdu = await frames.next()
        assert (tid, unit) == (71, 1)  # requests are served in order: unit 7 would have been answered first
        await frames.nothing_more()
        assert robot.requests == 1  # the foreign frame never reached the robot


async def test_a_held_request_does_not_hold_back_the_halt_path_nor_take_its_transaction_id() -> None:
    async with robot_link() as (robot, frames):
        robot.set_response_delay(WAIT_S)
        await frames.stream.send(read_ir(10) + read_hr(11, address=rm.HALT.address, count=1))
        with anyio.fail_after(WAIT_S / 2):
            tid, _unit, pdu = await frames.next()  # the halt probe, past the held read
            assert tid == 11 and pdu[:2] == b"\x03\x02"
            assert robot.stalled_requests == 1  # the read came first and is being held
            robot.set_response_delay(0)  # releases the held read
            tid, _unit, pdu = await frames.next()
        assert tid == 10 and pdu[:2] == bytes([4, 2 * rm.IR_COUNT])


async def test_unknown_function_and_non_modbus_streams_are_refused_like_a_controller() -> None:
    async with robot_link() as (_robot, frames):
        await frames.stream.send(MBAP.pack(5, 0, 2, 1) + b"\x41")  # a function the robot does not implement
        with anyio.fail_after(WAIT_S):
            assert await frames.next() == (5, 1, b"\xc1\x01")  # ILLEGAL_FUNCTION
        await frames.stream.send(MBAP.pack(6, 1, 6, 1) + b"\x03\x00\x00\x00\x01")  # protocol id 1: not Modbus
        with anyio.fail_after(WAIT_S):
            with pytest.raises(anyio.EndOfStream):
                await frames.stream.receive()  # the robot closed the connection
